"""CO-RE: relocated values checked against the kernel's BTF as bpftool reads it, and by running.

The expectations are computed here from ``bpftool btf dump file /sys/kernel/btf/vmlinux -j`` by
a small independent walker (member names through anonymous members, sizes, enum values), not by
pybpf's own BTF code.
"""

from __future__ import annotations

import glob
import json
import re
import shutil
import socket
import struct
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from pybpf.asm.insn import Class, Instruction, Size, decode, ld_imm64, ldx_mem, mov64_imm
from pybpf.btf import core
from pybpf.btf.ext import BTFExt, CoreRelo, CoreReloKind
from pybpf.btf.kernel import KernelBTF
from pybpf.btf.model import (
    BTF,
    Array,
    Enum,
    EnumValue,
    FuncProto,
    Fwd,
    Int,
    IntEncoding,
    Member,
    Param,
    Ptr,
    Struct,
    Typedef,
    UnionType,
)
from pybpf.errors import CORERelocationError, UnresolvedRelocationError, VerifierError
from pybpf.loader import load
from pybpf.object.spec import ObjectSpec

from conftest import bpf_object, need_tool, run

VMLINUX = Path("/sys/kernel/btf/vmlinux")
CILIUM = "/usr/share/gocode/src/github.com/cilium/ebpf/btf/testdata"
K = CoreReloKind
MODS = ("TYPEDEF", "CONST", "VOLATILE", "RESTRICT", "TYPE_TAG")


class KernelTypes:
    """The kernel's types as bpftool prints them, and just enough walking to compute what
    each relocation should become."""

    def __init__(self, types: list[dict]):
        self.by_id = {t["id"]: t for t in types}
        self.by_name: dict[tuple[str, str], int] = {}
        for t in types:
            self.by_name.setdefault((t["kind"], t["name"]), t["id"])

    def resolve(self, tid: int) -> dict:
        t = self.by_id.get(tid, {"kind": "VOID", "id": 0})
        while t["kind"] in MODS:
            t = self.by_id[t["type_id"]]
        return t

    def size(self, tid: int) -> int:
        t = self.resolve(tid)
        if t["kind"] == "PTR":
            return 8
        if t["kind"] == "ARRAY":
            return t["nr_elems"] * self.size(t["type_id"])
        return t["size"]

    def member(self, t: dict, name: str):
        """(bit offset, member) of ``name`` in struct/union ``t``, looking into anonymous ones."""
        for m in t.get("members", []):
            if m["name"] == name:
                return m["bits_offset"], m
            if m["name"] == "(anon)":
                found = self.member(self.resolve(m["type_id"]), name)
                if found:
                    return m["bits_offset"] + found[0], found[1]
        return None

    def expect(self, kind: CoreReloKind, root_kind: str, root: str, steps: list) -> int | None:
        """What the relocation should patch in, or None when the instruction must be poisoned."""
        tid = self.by_name.get((root_kind, root))
        if kind in core.TYPE_KINDS:
            if tid is None:
                return 0
            return {K.TYPE_EXISTS: 1, K.TYPE_SIZE: self.size(tid), K.TYPE_ID_TARGET: tid}[kind]
        if kind in core.ENUMVAL_KINDS:
            values = {v["name"]: v["val"] for v in self.by_id[tid]["values"]} if tid else {}
            if kind == K.ENUMVAL_EXISTS:
                return int(steps[0] in values)
            return values.get(steps[0])
        t, bits, member = self.by_id[tid] if tid else None, 0, None
        for step in steps:
            if t is None:
                break
            if isinstance(step, int):
                elem = self.resolve(t["type_id"])
                bits += step * self.size(elem["id"]) * 8
                t, member = elem, None
                continue
            found = self.member(t, step)
            if found is None:
                t = None
                break
            bits += found[0]
            member = found[1]
            t = self.resolve(member["type_id"])
        if kind == K.FIELD_EXISTS:
            return int(t is not None)
        if t is None:
            return None
        return self._field(kind, bits, member, t)

    def _field(self, kind, bits: int, member, t: dict) -> int:
        bit_sz = member.get("bitfield_size", 0) if member else 0
        if not bit_sz:
            size = self.size(t["id"])
            values = {K.FIELD_BYTE_OFFSET: bits // 8, K.FIELD_BYTE_SIZE: size}
            values[K.FIELD_LSHIFT_U64] = 64 - size * 8
            values[K.FIELD_RSHIFT_U64] = 64 - size * 8
        else:  # the smallest naturally aligned load covering the bitfield (libbpf's rule)
            size = t["size"]
            off = bits // 8 // size * size
            while bits + bit_sz - off * 8 > size * 8:
                size *= 2
                off = bits // 8 // size * size
            values = {K.FIELD_BYTE_OFFSET: off, K.FIELD_BYTE_SIZE: size}
            values[K.FIELD_LSHIFT_U64] = 64 - (bits + bit_sz - off * 8)
            values[K.FIELD_RSHIFT_U64] = 64 - bit_sz
        signed = t.get("encoding") == "SIGNED" or (t["kind"] == "INT" and "SIGNED" in t["encoding"])
        values[K.FIELD_SIGNED] = int(signed)
        return values[kind]


@pytest.fixture(scope="module")
def kernel_types() -> KernelTypes:
    if not VMLINUX.exists():
        pytest.skip("kernel has no BTF")
    out = run(need_tool("bpftool"), "btf", "dump", "file", str(VMLINUX), "-j").stdout
    return KernelTypes(json.loads(out)["types"])


def object_parts(path):
    with open(path, "rb") as f:
        elf = ELFFile(f)
        btf = BTF.parse(elf.get_section_by_name(".BTF").data(), elf.little_endian)
        ext = BTFExt.parse(elf.get_section_by_name(".BTF.ext").data(), elf.little_endian, btf)
        code = {
            sec: decode(elf.get_section_by_name(sec).data(), elf.little_endian)
            for sec in ext.core_relos
        }
    return btf, ext, code


def patched_value(insns: list[Instruction], idx: int) -> int | None:
    insn = insns[idx]
    if insn.code == 0x85 and insn.imm == core.POISON_HELPER_ID:
        return None
    if insn.is_ld_imm64:
        return (insn.imm & 0xFFFFFFFF) | (insns[idx + 1].imm & 0xFFFFFFFF) << 32
    if insn.cls in (Class.LDX, Class.ST, Class.STX):
        return insn.off
    return insn.imm


def local_steps(btf: BTF, relo: CoreRelo) -> tuple[str, str, list]:
    """Root kind and essential name, and the named members / indexes the access string walks."""
    spec = core.parse_spec(btf, relo)
    root = btf.type(relo.type_id)
    steps = [a.name if a.name is not None else a.idx for a in spec.accessors[1:]]
    if relo.kind in core.ENUMVAL_KINDS:
        steps = [core.essential_name(spec.accessors[0].name)]
    return root.kind.name, core.essential_name(root.name), steps


@pytest.mark.parametrize("name", ["tests/core_vmlinux", "tests/core_local"])
@pytest.mark.kmatrix
def test_every_relocation_gets_the_kernels_value(name, kernel_types):
    btf, ext, code = object_parts(bpf_object(name))
    target = KernelBTF.system()
    checked = 0
    for section, relos in ext.core_relos.items():
        out = core.relocate(code[section], relos, btf, target)
        for relo in relos:
            root_kind, root, steps = local_steps(btf, relo)
            expected = kernel_types.expect(relo.kind, root_kind, root, steps)
            got = patched_value(out, relo.insn_idx)
            assert got == expected, (relo, root, steps)
            checked += 1
    assert checked >= 12


def test_local_layouts_are_moved_to_the_kernels(kernel_types):
    """The reordered/renamed/missing cases the object was written for, spelled out."""
    btf, ext, code = object_parts(bpf_object("tests/core_local"))
    logs: list[str] = []
    out = core.relocate(code["xdp"], ext.core_relos["xdp"], btf, KernelBTF.system(), logs.append)
    task = kernel_types.by_id[kernel_types.by_name[("STRUCT", "task_struct")]]
    pid_bits = kernel_types.member(task, "pid")[0]
    by_insn = {r.insn_idx: r for r in ext.core_relos["xdp"]}
    pid_relo = next(i for i, r in by_insn.items() if r.access_str == "0:2")
    assert patched_value(out, pid_relo) == pid_bits // 8 != 20  # local offset was 20
    poisoned = [i for i, insn in enumerate(out) if insn.imm == core.POISON_HELPER_ID]
    assert len(poisoned) == 1  # the guarded read of no_such_field
    assert any("poisoned insn" in line for line in logs)
    # wide->ingress_ifindex: an 8-byte load of a field the kernel has as u32 becomes 4 bytes
    loads = [
        (a, b)
        for a, b in zip(code["xdp"], out)
        if a.cls == Class.LDX and a != b and a.code & 0x18 == Size.DW
    ]
    assert loads and all(b.code & 0x18 == Size.W for _, b in loads)


@pytest.mark.system
@pytest.mark.parametrize("name", ["tests/core_vmlinux", "tests/core_local"])
@pytest.mark.kmatrix
def test_relocated_program_runs_and_reports_the_kernels_values(name, kernel_types):
    """Load with the loader, run with BPF_PROG_TEST_RUN: results[] holds what CO-RE wrote."""
    from pybpf.object.spec import ObjectSpec

    path = bpf_object(name)
    btf, ext, code = object_parts(path)
    section = "xdp"
    out = core.relocate(code[section], ext.core_relos[section], btf, KernelBTF.system())
    stored = _stored_constants(code[section], out, ext.core_relos[section])
    spec = ObjectSpec.from_file(str(path))
    with load(spec) as obj:
        prog = obj.programs[Path(name).name]
        assert prog.test_run(bytes(64)).retval == 2  # XDP_PASS
        bss = next(m for n, m in obj.maps.items() if n.endswith(".bss"))
        raw = bss.lookup(0)
    results = struct.unpack(f"={len(raw) // 8}Q", raw)
    for slot, (relo, value) in stored.items():
        root_kind, root, steps = local_steps(btf, relo)
        assert results[slot] == kernel_types.expect(relo.kind, root_kind, root, steps) == value
    assert len(stored) >= 10
    if name.endswith("core_local"):
        # `loaded` (after results[]) read ctx->ingress_ifindex through the resized load
        assert results[-1] == socket.if_nametoindex("lo")


def _stored_constants(before, after, relos) -> dict[int, tuple[CoreRelo, int]]:
    """results[slot] = <relocated constant>: follow each relocated mov/ld_imm64 to its store."""
    out = {}
    for relo in relos:
        i = relo.insn_idx
        value = patched_value(after, i)
        if value is None or after[i].cls in (Class.LDX, Class.ST, Class.STX):
            continue  # poisoned, or a load whose offset moved: no constant is stored
        reg = after[i].dst
        j = i + (2 if after[i].is_ld_imm64 else 1)
        while j < len(after) and not (after[j].cls == Class.STX and after[j].src == reg):
            j += 1
        if j < len(after):
            out[after[j].off // 8] = (relo, value)
    return out


# --- the cilium/ebpf corpus -------------------------------------------------------------


@pytest.mark.parametrize("order", ["el", "eb"])
def test_cilium_relocs_resolve_against_their_own_btf(order):
    """relocs.c is written so that every relocation resolves to what the compiler wrote,
    except the sections named err_*, which must fail."""
    btf, ext, code = object_parts(f"{CILIUM}/relocs-{order}.elf")
    for section, relos in ext.core_relos.items():
        if "err_ambiguous" in section:
            with pytest.raises(CORERelocationError, match="ambiguity"):
                core.relocate(code[section], relos, btf, btf)
            continue
        assert core.relocate(code[section], relos, btf, btf) == code[section], section


def test_cilium_relocs_read_is_the_same_in_both_byte_orders():
    results = []
    for order in ("el", "eb"):
        btf, ext, code = object_parts(f"{CILIUM}/relocs_read-{order}.elf")
        with open(f"{CILIUM}/relocs_read_tgt-{order}.elf", "rb") as f:
            elf = ELFFile(f)
            target = BTF.parse(elf.get_section_by_name(".BTF").data(), elf.little_endian)
        out = core.relocate(code[".text"], ext.core_relos[".text"], btf, target)
        results.append([patched_value(out, r.insn_idx) for r in ext.core_relos[".text"]])
    assert results[0] == results[1]
    assert results[0].count(None) == 0


# --- the rules, on hand-made BTF ------------------------------------------------------------

INT = Int("int", 4, IntEncoding.SIGNED, 0, 32)
UINT = Int("unsigned int", 4, IntEncoding.NONE, 0, 32)
U64 = Int("unsigned long long", 8, IntEncoding.NONE, 0, 64)


def relo(kind, type_id, access="0", insn_idx=0) -> CoreRelo:
    return CoreRelo(insn_idx, type_id, access, kind)


def test_ambiguous_offsets_are_refused():
    local = BTF([INT, Struct("thing", 4, (Member("x", 1, 0),))])
    target = BTF(
        [
            INT,
            Struct("thing___a", 8, (Member("x", 1, 0),)),
            Struct("thing___b", 8, (Member("pad", 1, 0), Member("x", 1, 32))),
        ]
    )
    with pytest.raises(CORERelocationError, match="field offset ambiguity"):
        core.relocate([mov64_imm(1, 0)], [relo(K.FIELD_BYTE_OFFSET, 2, "0:0")], local, target)


def test_flavors_that_agree_are_not_ambiguous():
    local = BTF([INT, Struct("thing", 4, (Member("x", 1, 0),))])
    target = BTF(
        [
            INT,
            Struct("thing___a", 8, (Member("pad", 1, 0), Member("x", 1, 32))),
            Struct("thing___b", 8, (Member("y", 1, 0), Member("x", 1, 32))),
        ]
    )
    out = core.relocate([mov64_imm(1, 0)], [relo(K.FIELD_BYTE_OFFSET, 2, "0:0")], local, target)
    assert out[0].imm == 4


def test_fields_must_stay_compatible():
    """A member of the same name but of an incompatible kind is not a match: poisoned."""
    local = BTF([INT, Struct("thing", 4, (Member("x", 1, 0),))])
    target = BTF([INT, Struct("inner", 4, ()), Struct("thing", 16, (Member("x", 2, 64),))])
    out = core.relocate([mov64_imm(1, 0)], [relo(K.FIELD_BYTE_OFFSET, 2, "0:0")], local, target)
    assert out[0] == core.poisoned()


def test_members_are_found_inside_anonymous_structs():
    local = BTF([INT, Struct("thing", 8, (Member("a", 1, 0), Member("b", 1, 32)))])
    target = BTF(
        [
            INT,
            Struct("", 8, (Member("pad", 1, 0), Member("b", 1, 32))),
            UnionType("", 8, (Member("", 2, 0),)),
            Struct("thing", 24, (Member("a", 1, 0), Member("", 3, 64))),
        ]
    )
    out = core.relocate([mov64_imm(1, 4)], [relo(K.FIELD_BYTE_OFFSET, 2, "0:1")], local, target)
    assert out[0].imm == 8 + 4


def test_missing_enum_value_poisons_an_ld_imm64_whole():
    local = BTF([Enum("e", 4, False, (EnumValue("GONE", 7),))])
    target = BTF([Enum("e", 4, False, (EnumValue("OTHER", 1),))])
    out = core.relocate(ld_imm64(1, 7), [relo(K.ENUMVAL_VALUE, 1, "0")], local, target)
    assert out == [core.poisoned(), core.poisoned()]


def test_code_that_disagrees_with_its_btf_is_an_error():
    local = BTF([INT, Struct("thing", 8, (Member("a", 1, 0), Member("b", 1, 32)))])
    with pytest.raises(CORERelocationError, match="says 4"):
        core.relocate([mov64_imm(1, 99)], [relo(K.FIELD_BYTE_OFFSET, 2, "0:1")], local, local)


def test_resizing_a_signed_field_poisons_the_load():
    """u64 → u32 can be loaded narrower (zero-extension keeps the value); a signed one cannot."""
    local = BTF([Int("long", 8, IntEncoding.SIGNED, 0, 64), Struct("s", 8, (Member("v", 1, 0),))])
    target = BTF([INT, Struct("s", 4, (Member("v", 1, 0),))])
    load = [ldx_mem(Size.DW, 1, 2, 0)]
    out = core.relocate(load, [relo(K.FIELD_BYTE_OFFSET, 2, "0:0")], local, target)
    assert out == [core.poisoned()]
    local = BTF([U64, Struct("s", 8, (Member("v", 1, 0),))])
    target = BTF([UINT, Struct("s", 4, (Member("v", 1, 0),))])
    out = core.relocate(load, [relo(K.FIELD_BYTE_OFFSET, 2, "0:0")], local, target)
    assert out == [ldx_mem(Size.W, 1, 2, 0)]


@pytest.mark.parametrize(
    "target_types, matches",
    [
        ([INT, Struct("s", 8, (Member("a", 1, 0), Member("b", 1, 32)))], True),
        ([INT, Struct("s", 8, (Member("b", 1, 0), Member("a", 1, 32)))], True),  # order free
        ([INT, Struct("s", 4, (Member("a", 1, 0),))], False),  # b missing
        ([UINT, Struct("s", 8, (Member("a", 1, 0), Member("b", 1, 32)))], False),  # signedness
        ([INT, UnionType("s", 8, (Member("a", 1, 0), Member("b", 1, 0)))], False),  # kind
    ],
)
def test_type_matches_follows_libbpf(target_types, matches):
    local = BTF([INT, Struct("s", 8, (Member("a", 1, 0), Member("b", 1, 32)))])
    target = BTF(target_types)
    out = core.relocate([mov64_imm(1, 1)], [relo(K.TYPE_MATCHES, 2)], local, target)
    assert out[0].imm == int(matches)


def test_type_matches_through_pointers_accepts_forward_declarations():
    local = BTF([Struct("inner", 4, ()), Ptr(1), Struct("s", 8, (Member("p", 2, 0),))])
    target = BTF([Fwd("inner", False), Ptr(1), Struct("s", 8, (Member("p", 2, 0),))])
    assert core.types_match(local, 3, target, 3)
    assert not core.types_match(local, 1, target, 1)  # not behind a pointer


def test_func_protos_compare_parameters():
    local = BTF([INT, FuncProto(1, (Param("a", 1),)), Typedef("cb", 2)])
    same = BTF([INT, FuncProto(1, (Param("x", 1),)), Typedef("cb", 2)])
    more = BTF([INT, FuncProto(1, (Param("x", 1), Param("y", 1))), Typedef("cb", 2)])
    assert core.types_are_compat(local, 3, same, 3)
    assert not core.types_are_compat(local, 3, more, 3)


def test_type_id_local_needs_no_target():
    local = BTF([INT, Struct("s", 4, ())])
    out = core.relocate(ld_imm64(1, 2), [relo(K.TYPE_ID_LOCAL, 2)], local, BTF([]))
    assert patched_value(out, 0) == 2


def test_anonymous_types_cannot_be_relocated():
    local = BTF([INT, Struct("", 4, (Member("x", 1, 0),))])
    with pytest.raises(CORERelocationError, match="anonymous"):
        core.relocate([mov64_imm(1, 0)], [relo(K.FIELD_BYTE_OFFSET, 2, "0:0")], local, local)


def test_malformed_access_strings_are_named():
    local = BTF([INT, Struct("s", 4, (Member("x", 1, 0),))])
    for access, message in [("0:5", "member #5"), ("a:b", "malformed"), ("1", None)]:
        r = relo(K.TYPE_SIZE if access == "1" else K.FIELD_BYTE_OFFSET, 2, access)
        with pytest.raises(CORERelocationError, match=message or "expected '0'"):
            core.relocate([mov64_imm(1, 0)], [r], local, local)


def test_essential_names_strip_the_last_flavor():
    assert core.essential_name("task_struct___v1") == "task_struct"
    assert core.essential_name("a___b___c") == "a___b"
    assert core.essential_name("__state") == "__state"
    assert core.essential_name("x____y") == "x____y"  # four underscores: not a flavor


def test_every_cilium_object_with_core_relos_parses_its_specs():
    paths = [p for p in glob.glob(f"{CILIUM}/relocs*-el.elf") if "_tgt" not in p]  # (no .BTF.ext)
    assert len(paths) == 2, f"cilium's relocs objects not found under {CILIUM}"
    parsed = 0
    for path in paths:
        btf, ext, _ = object_parts(path)
        for relos in ext.core_relos.values():
            for r in relos:
                core.parse_spec(btf, r)
                parsed += 1
    assert parsed > 100, parsed


def test_damaged_local_btf_names_the_relocation():
    local = BTF([Array(1, 1, 2), Struct("s", 4, (Member("x", 1, 0),))])
    with pytest.raises(CORERelocationError, match="insn 0 .*too deep"):
        core.relocate([mov64_imm(1, 0)], [relo(K.FIELD_BYTE_OFFSET, 2, "0:0:1")], local, local)


def test_module_btf_is_searched_only_when_vmlinux_has_no_candidate():
    """cilium's btf_testmod (split BTF on its vmlinux) defines bpf_testmod_test_writable_ctx."""
    import gzip

    base = KernelBTF(gzip.decompress(Path(f"{CILIUM}/vmlinux.btf.gz").read_bytes()))
    module = KernelBTF(Path(f"{CILIUM}/btf_testmod.btf").read_bytes(), "btf_testmod", base)
    local = BTF([INT, Struct("bpf_testmod_test_writable_ctx___mine", 4, (Member("val", 1, 0),))])
    r = relo(K.FIELD_BYTE_OFFSET, 2, "0:0")
    assert core.relocate([mov64_imm(1, 0)], [r], local, base, modules=[module])[0].imm == 4
    assert core.relocate([mov64_imm(1, 0)], [r], local, base)[0] == core.poisoned()
    # a vmlinux type wins over a module one: modules are not even looked at
    local = BTF([INT, Struct("task_struct", 4, (Member("pid", 1, 0),))])
    logs: list[str] = []
    core.relocate([mov64_imm(1, 0)], [r], local, base, logs.append, modules=[module])
    assert sum("candidate #" in line for line in logs) == 1


# --- a relocation that cannot be resolved, reached or not --------------------------------------

UNRESOLVED = "tests/core_unresolved"


def libbpf_unresolved(path: str) -> str:
    """The relocation libbpf names when the verifier reaches one it poisoned: from bpftool prog
    loadall's log line ``failed to resolve CO-RE relocation <byte_off> [4] struct s.a (...)``,
    the part after the kind."""
    pin = f"/sys/fs/bpf/pybpf-core-{uuid.uuid4().hex[:8]}"
    try:
        res = subprocess.run(
            [need_tool("bpftool"), "prog", "loadall", path, pin], capture_output=True, text=True
        )
    finally:
        shutil.rmtree(pin, ignore_errors=True)
    for line in res.stderr.splitlines():
        if line.startswith("failed to resolve CO-RE relocation <"):
            return line.split("> ", 1)[1]
    raise AssertionError(f"bpftool named no CO-RE relocation: {res.stderr}")


@pytest.mark.system
@pytest.mark.kernel_btf
@pytest.mark.kmatrix
@pytest.mark.parametrize("path", [UNRESOLVED, f"{CILIUM}/relocs_read-el.elf"])
def test_a_program_that_reaches_an_unresolved_relocation_is_refused_naming_it(path):
    """libbpf poisons the instruction and, when the verifier refuses the program there, says
    which relocation failed; pybpf's one line names the same one (local type, access string)."""
    path = str(bpf_object(path) if path == UNRESOLVED else path)
    if not Path(path).exists():
        pytest.skip(f"{path} is missing")
    expected = libbpf_unresolved(path)
    res = subprocess.run(
        [sys.executable, "-m", "pybpf", "load", path], capture_output=True, text=True
    )
    assert res.returncode == 1
    assert len(res.stderr.splitlines()) == 1
    assert f": failed to resolve CO-RE relocation FIELD_BYTE_OFFSET {expected}: " in res.stderr
    assert "; the verifier rejected the program at insn " in res.stderr
    verbose = subprocess.run(
        [sys.executable, "-m", "pybpf", "load", "-v", path], capture_output=True, text=True
    )
    assert f"invalid func unknown#{core.POISON_HELPER_ID}" in verbose.stderr  # the whole log
    assert verbose.stderr.splitlines()[-1] == res.stderr.strip()


@pytest.mark.system
@pytest.mark.kernel_btf
@pytest.mark.kmatrix
def test_an_unresolved_relocation_names_what_the_kernel_lacks():
    spec = ObjectSpec.from_file(str(bpf_object(UNRESOLVED)))
    with pytest.raises(UnresolvedRelocationError) as info:
        load(spec, programs=["reads_missing_field"])
    err = info.value
    assert isinstance(err, CORERelocationError) and isinstance(err, VerifierError)
    assert re.fullmatch(
        r"cannot load program 'reads_missing_field' \(section xdp\): EINVAL \(Invalid argument\): "
        r"failed to resolve CO-RE relocation FIELD_BYTE_OFFSET \[\d+\] "
        r"struct task_struct___missing\.no_such_field \(0:0 @ offset 0\): "
        r"the kernel's struct task_struct has no field no_such_field of a compatible type; "
        r"the verifier rejected the program at insn 0, which uses it",
        str(err),
    ), str(err)
    # in a subprogram: the program's instruction number (the verifier's), and the function
    with pytest.raises(UnresolvedRelocationError) as info:
        load(spec, programs=["reads_missing_struct"])
    err = info.value
    assert "FIELD_BYTE_OFFSET" in str(
        err
    ) and "struct no_such_struct___x.b (0:1 @ offset 4)" in str(err)
    assert str(err).endswith(
        ": the kernel's BTF has no struct no_such_struct; the verifier rejected the program at "
        f"insn {err.insn} (in second_member), which uses it"
    )


@pytest.mark.system
@pytest.mark.kernel_btf
@pytest.mark.kmatrix
def test_an_unresolved_relocation_in_code_never_reached_loads():
    """``if (bpf_core_field_exists(...))`` leaves the poisoned read as dead code: the program
    loads and takes the other branch, as under libbpf."""
    spec = ObjectSpec.from_file(str(bpf_object(UNRESOLVED)))
    with load(spec, programs=["guards_missing_field"]) as obj:
        assert obj.programs["guards_missing_field"].test_run(bytes(64)).retval == 2  # XDP_PASS
        bss = next(m for n, m in obj.maps.items() if n.endswith(".bss"))
        assert int.from_bytes(bss.lookup(0), sys.byteorder) == 7


def test_a_rejection_elsewhere_is_not_blamed_on_a_poisoned_relocation():
    from pybpf.btf.core_poison import poison_reached

    log = "0: (85) call unknown#195896080\ninvalid func unknown#195896080\nprocessed 1 insns\n"
    piece = type("Piece", (), dict(start=0, length=4, section="xdp", section_start=0, function="f"))
    relo = core.Unresolved(0, K.FIELD_BYTE_OFFSET, "[2] struct s.x (0:0 @ offset 0)", "why")
    assert poison_reached(log, [piece], {"xdp": {0: relo}}) == (str(relo), "insn 0")
    assert poison_reached(log, [piece], {"xdp": {1: relo}}) is None  # not a poisoned insn
    other = "0: (85) call unknown#12345\ninvalid func unknown#12345\n"
    assert poison_reached(other, [piece], {"xdp": {0: relo}}) is None
