"""The lazy kernel BTF reader: same types as the full parser, names as bpftool finds them."""

from __future__ import annotations

import gzip
import json
import mmap
import random
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from pybpf.btf import kernel as kernel_module
from pybpf.btf.kconfig import (
    KconfigError,
    kconfig_map_data,
    kconfig_values,
    kernel_version,
    read_config,
)
from pybpf.btf.kernel import KernelBTF
from pybpf.btf.model import BTF, Func, FuncProto, Fwd, Kind, Param, Ptr, Struct
from pybpf.errors import BTFError

from conftest import bpf_object, need_tool, run

VMLINUX = Path("/sys/kernel/btf/vmlinux")
CILIUM = Path("/usr/share/gocode/src/github.com/cilium/ebpf/btf/testdata")


@pytest.fixture(scope="module")
def full() -> BTF:
    if not VMLINUX.exists():
        pytest.skip("kernel has no BTF")
    return BTF.parse(VMLINUX.read_bytes())


@pytest.fixture(scope="module")
def lazy() -> KernelBTF:
    if not VMLINUX.exists():
        pytest.skip("kernel has no BTF")
    return KernelBTF.system()


def test_every_type_decodes_as_the_full_parser_decodes_it(full, lazy):
    assert lazy.count == len(full.types)
    for tid in range(lazy.count):
        assert lazy.type(tid) == full.type(tid)
        assert lazy.kind_of(tid) == full.type(tid).kind


def test_names_are_found_like_a_full_index(full, lazy):
    names = sorted({t.name for t in full.types if t.name})
    for name in random.Random(7).sample(names, 3000) + ["task_struct", "int", "nf_conn___init"]:
        assert lazy.find_all(name) == full.find_all(name), name
        for kind in (Kind.STRUCT, Kind.TYPEDEF, Kind.FUNC):
            assert lazy.find_all(name, kind) == full.find_all(name, kind), name
    assert lazy.find("no such type at all") is None


def test_flavored_kernel_names_are_candidates(full, lazy):
    flavored = [i for i, t in enumerate(full.types) if "___" in t.name]
    for tid in flavored:
        name = full.type(tid).name
        assert tid in lazy.find_essential(name)
        assert lazy.find_essential(name) == full.find_essential(name)
    # an object's flavor of a kernel name (any kernel has task_struct): the kernel's type, and
    # the kernel's own flavors of it, whichever it has
    task = lazy.find("task_struct", Kind.STRUCT)
    assert task is not None
    for name in ("task_struct___pybpf", "task_struct"):
        found = lazy.find_essential(name)
        assert task in found, name
        assert found == full.find_essential(name), name
        assert all(full.type(i).name.split("___")[0] == "task_struct" for i in found), name
    # the flavor is what follows the last "___", as libbpf takes it: no kernel has a
    # task_struct___a
    assert lazy.find_essential("task_struct___a___b") == []
    assert full.find_essential("task_struct___a___b") == []


def test_the_system_btf_is_read_once(lazy):
    assert KernelBTF.system() is lazy


@pytest.mark.kmatrix
def test_vmlinux_btf_is_mapped_where_the_kernel_allows_it_and_read_elsewhere(lazy):
    """Linux 6.16 and later let /sys/kernel/btf/vmlinux be mapped (MAP_PRIVATE, PROT_READ): the
    reader then copies none of its megabytes. Older kernels refuse, and it is read. Either way
    the types are those of the file's bytes."""
    with open(VMLINUX, "rb") as f:
        try:
            probe = mmap.mmap(
                f.fileno(), VMLINUX.stat().st_size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ
            )
            probe.close()
            allowed = True
        except OSError:
            allowed = False
    mapped = [line for line in Path("/proc/self/maps").read_text().splitlines()
              if line.endswith(str(VMLINUX))]  # fmt: skip
    assert bool(mapped) == allowed, (allowed, mapped)
    read = KernelBTF(VMLINUX.read_bytes())
    assert read.count == lazy.count
    for name in ("task_struct", "sk_buff", "xdp_md", "bpf_map", "tcphdr"):
        ids = lazy.find_essential(name)
        assert ids and ids == read.find_essential(name)
        assert [lazy.type(t) for t in ids] == [read.type(t) for t in ids]


@pytest.mark.kmatrix
def test_the_running_kernels_btf_index_is_found_by_its_build_id(tmp_path, monkeypatch):
    """The kernel's GNU build ID (in /sys/kernel/notes; Kbuild links vmlinux with
    --build-id=sha1) keys the cached vmlinux index: a later process finds the entry without
    checksumming the blob's megabytes."""
    from pybpf.btf import cache, kindex

    if not VMLINUX.exists():
        pytest.skip("kernel has no BTF")
    assert len(kernel_module.kernel_build_id()) == 20
    monkeypatch.setenv("PYBPF_CACHE_DIR", str(tmp_path))
    first = kernel_module._system_btf.__wrapped__(str(VMLINUX))  # built and stored
    built = []

    def no_checksum(data):
        raise AssertionError("the whole blob was checksummed")

    def build(cls, *args):
        built.append(args)
        raise AssertionError("the index was built again")

    monkeypatch.setattr(cache, "digest", no_checksum)
    monkeypatch.setattr(kindex.Index, "build", classmethod(build))
    again = kernel_module._system_btf.__wrapped__(str(VMLINUX))
    assert built == []
    assert again.count == first.count
    for name in ("task_struct", "sk_buff", "xdp_md"):
        assert again.find_essential(name) == first.find_essential(name) != []


def test_a_file_that_may_not_be_mapped_is_read(tmp_path, monkeypatch):
    blob = tmp_path / "btf"
    blob.write_bytes(bytes(range(256)) * 3)
    got = kernel_module._mapped(str(blob))
    assert isinstance(got, mmap.mmap) and got[:] == blob.read_bytes()

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(kernel_module.mmap, "mmap", refused)
    got = kernel_module._mapped(str(blob))
    assert isinstance(got, bytes) and got == blob.read_bytes()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert kernel_module._mapped(str(empty)) == b""


@pytest.mark.kmatrix
def test_queries_agree_with_bpftool(lazy):
    """task_struct's size and pid offset as bpftool prints them."""
    out = run(need_tool("bpftool"), "btf", "dump", "file", str(VMLINUX), "-j").stdout
    types = json.loads(out)["types"]
    ref = next(t for t in types if t["kind"] == "STRUCT" and t["name"] == "task_struct")
    tid = lazy.find("task_struct", Struct)
    assert tid == ref["id"]
    assert lazy.sizeof(tid) == ref["size"]
    pid = next(m for m in ref["members"] if m["name"] == "pid")
    assert {m.name: m.bit_offset for m in lazy.type(tid).members}["pid"] == pid["bits_offset"]
    assert lazy.format(tid) == "struct task_struct"


def test_split_module_btf_continues_vmlinux(tmp_path):
    """cilium's btf_testmod.btf is split BTF over its vmlinux.btf: read both ways and by
    bpftool."""
    base_data = gzip.decompress((CILIUM / "vmlinux.btf.gz").read_bytes())
    mod_data = (CILIUM / "btf_testmod.btf").read_bytes()
    base, lazy_base = BTF.parse(base_data), KernelBTF(base_data)
    mod = BTF.parse(mod_data, base=base)
    lazy_mod = KernelBTF(mod_data, "btf_testmod", base=lazy_base)
    assert lazy_mod.first_id == mod.first_id == len(base.types)
    assert lazy_mod.count == len(mod.types)
    for tid in range(mod.first_id, len(mod.types)):
        assert lazy_mod.type(tid) == mod.type(tid)
    assert lazy_mod.type(1) == base.type(1)  # base ids reach through
    assert mod.encode() == mod_data
    named = [t.name for t in mod.own_types if t.name]
    for name in named[:200]:
        assert lazy_mod.find_all(name) == mod.find_all(name)
    (tmp_path / "vmlinux").write_bytes(base_data)
    out = run(
        need_tool("bpftool"),
        "btf",
        "dump",
        "-B",
        str(tmp_path / "vmlinux"),
        "file",
        str(CILIUM / "btf_testmod.btf"),
        "-j",
    ).stdout
    ref = json.loads(out)["types"]
    assert [r["id"] for r in ref] == list(range(mod.first_id, len(mod.types)))
    assert [r["name"] if r["name"] != "(anon)" else "" for r in ref] == [
        t.name for t in mod.own_types
    ]


def test_truncated_kernel_btf_is_named():
    data = bytearray(BTF([Struct("s", 4, ())]).encode())
    data[24 + 4] = 5  # vlen 5: the record claims members that are not there
    with pytest.raises(BTFError, match="runs past the type section"):
        KernelBTF(bytes(data))


@dataclass
class FakeProgram:
    name: str
    section: str
    attach_type: str
    attach_target: str


@pytest.mark.parametrize(
    "attach_type, target, kind, btf_name",
    [
        ("TRACE_FENTRY", "tcp_v4_connect", Kind.FUNC, "tcp_v4_connect"),
        ("TRACE_RAW_TP", "sched_switch", Kind.TYPEDEF, "btf_trace_sched_switch"),
        ("TRACE_ITER", "task", Kind.FUNC, "bpf_iter_task"),
    ],
)
@pytest.mark.kmatrix
def test_attach_targets_are_named_as_libbpf_names_them(lazy, attach_type, target, kind, btf_name):
    ps = FakeProgram("p", f"x/{target}", attach_type, target)
    found = lazy.attach_btf_id(ps)["attach_btf_id"]
    assert lazy.type(found).name == btf_name and lazy.kind_of(found) == kind


def test_missing_attach_target_is_named(lazy):
    ps = FakeProgram("p", "fentry/nope_nope", "TRACE_FENTRY", "nope_nope")
    with pytest.raises(BTFError, match="program 'p' .* no FUNC 'nope_nope'"):
        lazy.attach_btf_id(ps)


def test_forward_declarations_are_separate_candidates(full, lazy):
    fwd = next(i for i, t in enumerate(full.types) if isinstance(t, Fwd))
    name = full.type(fwd).name
    assert fwd in lazy.find_all(name, Kind.FWD)


# --- .kconfig externs -----------------------------------------------------------------------


def kconfig_object():
    """The fixed-up BTF of bpf/tests/btf_kconfig.bpf.c and its __weak extern names."""
    from elftools.elf.elffile import ELFFile
    from test_btf import elf_layout

    path = bpf_object("tests/btf_kconfig")
    with open(path, "rb") as f:
        elf = ELFFile(f)
        btf = BTF.parse(elf.get_section_by_name(".BTF").data(), elf.little_endian)
        weak = {
            s.name
            for s in elf.get_section_by_name(".symtab").iter_symbols()
            if s["st_info"]["bind"] == "STB_WEAK"
        }
    return path, btf.with_datasec_fixup(*elf_layout(path)), weak


@pytest.mark.system
@pytest.mark.kmatrix
def test_kconfig_map_matches_what_libbpf_fills():
    """bpftool (libbpf) loads the object; its .kconfig map holds exactly our bytes."""
    bpftool = need_tool("bpftool")
    path, btf, weak = kconfig_object()
    pins = Path(f"/sys/fs/bpf/pybpf_kconfig_{uuid.uuid4().hex[:8]}")
    try:
        run(bpftool, "prog", "loadall", str(path), str(pins))
        prog = json.loads(
            run(bpftool, "prog", "show", "pinned", str(pins / "kconfig_prog"), "-j").stdout
        )
        for map_id in prog["map_ids"]:
            info = json.loads(run(bpftool, "map", "show", "id", str(map_id), "-j").stdout)
            if info["name"].endswith(".kconfig"):
                dump = json.loads(run(bpftool, "map", "dump", "id", str(map_id), "-j").stdout)
                reference = bytes(int(b, 16) for b in dump[0]["value"])
                break
        else:
            pytest.fail("libbpf made no .kconfig map")
    finally:
        shutil.rmtree(pins, ignore_errors=True)
    assert kconfig_map_data(btf, weak) == reference


def test_kconfig_values_are_encoded_by_type():
    _, btf, weak = kconfig_object()
    types = {
        btf.name_of(v.type_id): btf.type(v.type_id).type
        for v in btf.type(btf.find(".kconfig")).vars
    }
    config = {
        "CONFIG_BPF_SYSCALL": "y",
        "CONFIG_BPF_JIT": "m",
        "CONFIG_XDP_SOCKETS": "n",
        "CONFIG_HZ": "0x3e8",
        "CONFIG_NR_CPUS": "-1",
        "CONFIG_LOCALVERSION": '"-a-very-long-local-version"',
    }
    got = kconfig_values(btf, types, weak, config, release="5.10.300-custom")
    order = sys.byteorder
    assert got["LINUX_KERNEL_VERSION"] == ((5 << 16) + (10 << 8) + 255).to_bytes(4, order)
    assert got["CONFIG_BPF_SYSCALL"] == b"\x01"
    assert got["CONFIG_BPF_JIT"] == (2).to_bytes(4, order)  # TRI_MODULE
    assert got["CONFIG_XDP_SOCKETS"] == b"n"  # a char holds the letter
    assert got["CONFIG_HZ"] == (1000).to_bytes(8, order)
    assert got["CONFIG_NR_CPUS"] == (-1).to_bytes(4, order, signed=True)
    assert got["CONFIG_LOCALVERSION"] == b"-a-very-long-lo\0"  # cut to 15 + NUL
    assert got["CONFIG_PYBPF_DOES_NOT_EXIST"] == bytes(4)  # weak and missing: 0


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("CONFIG_BPF_SYSCALL", "m", "is a bool, and the kernel says 'm'"),
        ("CONFIG_BPF_SYSCALL", "2", "is a bool, and the kernel says 2"),
        ("CONFIG_NR_CPUS", "y", "cannot hold 'y'"),
        ("CONFIG_NR_CPUS", '"x"', "cannot hold a string"),
        ("CONFIG_NR_CPUS", "0x1ffffffff", "does not fit"),
        ("CONFIG_HZ", "fast", "cannot read 'fast' as a number"),
    ],
)
def test_kconfig_values_that_do_not_fit_are_named(name, value, message):
    _, btf, _ = kconfig_object()
    types = {
        btf.name_of(v.type_id): btf.type(v.type_id).type
        for v in btf.type(btf.find(".kconfig")).vars
    }
    with pytest.raises(KconfigError, match=f"'{name}'.*{message}"):
        kconfig_values(btf, {name: types[name]}, (), {name: value})


def test_missing_strong_kconfig_is_an_error():
    _, btf, _ = kconfig_object()
    var = btf.type(btf.find("CONFIG_BPF_SYSCALL"))
    with pytest.raises(KconfigError, match="no value for it"):
        kconfig_values(btf, {"CONFIG_BPF_SYSCALL": var.type}, (), {})


def test_kernel_version_is_read_like_libbpf():
    assert kernel_version("6.18.44-fc-v669") == 0x6122C  # what libbpf logged here
    assert kernel_version("4.19.300") == (4 << 16) + (19 << 8) + 255
    assert kernel_version("6.8-rc1") == 0  # sscanf("%u.%u.%u") fails: libbpf says 0


def test_config_file_is_read(tmp_path):
    (tmp_path / "config").write_text(
        '#\n# CONFIG_FOO is not set\nCONFIG_BAR=y\nCONFIG_S="a b"\nCONFIG_N=0x10\n'
    )
    assert read_config(str(tmp_path / "config")) == {
        "CONFIG_BAR": "y",
        "CONFIG_S": '"a b"',
        "CONFIG_N": "0x10",
    }
    with pytest.raises(KconfigError, match="cannot read the kernel configuration"):
        read_config(str(tmp_path / "nope"))


def test_module_btfs_are_split_on_vmlinux(lazy):
    names = sorted(p.name for p in Path("/sys/kernel/btf").iterdir() if p.name != "vmlinux")
    modules = KernelBTF.modules()
    assert [m.name for m in modules] == names
    assert all(m.base is lazy and m.first_id == lazy.count for m in modules)


def test_ksyms_are_found_with_compatible_prototypes(lazy):
    """Kernel ids as bpftool prints them; prototypes checked the way libbpf checks them."""
    from test_btf import object_btf

    out = run(need_tool("bpftool"), "btf", "dump", "file", str(VMLINUX), "-j").stdout
    ids = {(t["kind"], t["name"]): t["id"] for t in json.loads(out)["types"]}
    assert lazy.ksym("bpf_prog_active") == ids[("VAR", "bpf_prog_active")]

    def declaring(pointee, nparams=1):
        params = tuple(Param(f"p{i}", 2) for i in range(nparams))
        return BTF([pointee, Ptr(1), FuncProto(2, params), Func("bpf_task_acquire", 3)])

    good = declaring(Struct("task_struct", 0, ()))
    assert lazy.ksym("bpf_task_acquire", good, 4) == ids[("FUNC", "bpf_task_acquire")]
    with pytest.raises(BTFError, match="'bpf_task_acquire' \\(kfunc\\): the object declares"):
        lazy.ksym("bpf_task_acquire", declaring(Struct("task_struct", 0, ()), 2), 4)
    # btf_externs.bpf.c only forward-declares struct task_struct: libbpf refuses that too
    # ("func_proto [8] incompatible with kernel"), as a FWD is not a STRUCT to CO-RE.
    local = object_btf(bpf_object("tests/btf_externs"))
    with pytest.raises(BTFError, match="kfunc"):
        lazy.ksym("bpf_task_acquire", local, local.find("bpf_task_acquire", Kind.FUNC))
    with pytest.raises(BTFError, match="no function or variable"):
        lazy.ksym("pybpf_no_such_symbol")
