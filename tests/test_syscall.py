"""bpf(2) wrappers: layouts checked against the running kernel's own types, fds, errors, ids."""

from __future__ import annotations

import random
import re
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import construct as cs
import pytest

from pybpf.asm import insn as I
from pybpf.errors import SyscallError
from pybpf.link import netlink, tc
from pybpf.sys import attr, layout, linkcmd, mapcmd, objcmd, objinfo, progcmd, syscall, uapi

from conftest import ROOT, need_tool, run

# Which C path reaches each declaration's fields inside the kernel's types.
ATTR_PATHS = {
    "map_create_attr": ("union bpf_attr", ""),
    "map_elem_attr": ("union bpf_attr", ""),
    "map_batch_attr": ("union bpf_attr", "batch."),
    "prog_load_attr": ("union bpf_attr", ""),
    "obj_attr": ("union bpf_attr", ""),
    "test_attr": ("union bpf_attr", "test."),
    "get_id_attr": ("union bpf_attr", ""),
    "info_attr": ("union bpf_attr", "info."),
    "btf_load_attr": ("union bpf_attr", ""),
    "link_create_attr": ("union bpf_attr", "link_create."),
    "link_update_attr": ("union bpf_attr", "link_update."),
    "link_detach_attr": ("union bpf_attr", "link_detach."),
    "enable_stats_attr": ("union bpf_attr", "enable_stats."),
    "prog_attach_attr": ("union bpf_attr", ""),
    "prog_query_attr": ("union bpf_attr", "query."),
    "bpf_prog_info": ("struct bpf_prog_info", ""),
    "bpf_map_info": ("struct bpf_map_info", ""),
    "bpf_btf_info": ("struct bpf_btf_info", ""),
}


def _fields(layout: cs.Struct) -> list[tuple[str, int, int]]:
    """(name, offset, size) of every named field of a construct declaration."""
    out, offset = [], 0
    for sub in layout.subcons:
        size = sub.sizeof()
        if sub.name:
            out.append((sub.name, offset, size))
        offset += size
    return out


def _vmlinux_h(tmp_path: Path) -> Path:
    built = ROOT / "build" / "vmlinux.h"
    if built.exists():
        return built
    bpftool = need_tool("bpftool")
    out = tmp_path / "vmlinux.h"
    text = run(bpftool, "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c").stdout
    out.write_text(text)
    return out


@pytest.mark.system
@pytest.mark.kmatrix
def test_attr_layouts_match_the_running_kernel(tmp_path: Path) -> None:
    """Every field offset and size equals the kernel's (its BTF, compiled by clang)."""
    clang = need_tool("clang")
    asserts = []
    for decl, (ctype, prefix) in ATTR_PATHS.items():
        for name, offset, size in _fields(getattr(attr, decl, None) or getattr(objinfo, decl)):
            if name == "gpl_compatible":
                continue  # a 1-bit bit-field in C; netns_dev's offset pins its word
            member = prefix + name
            asserts.append(
                f"_Static_assert(__builtin_offsetof({ctype}, {member}) == {offset}, "
                f'"{decl}.{name} offset");'
            )
            asserts.append(
                f'_Static_assert(sizeof((({ctype} *)0)->{member}) == {size}, "{decl}.{name} size");'
            )
    # bpf_link_info's union starts at 16; XDP's member is the ifindex there.
    asserts.append(
        '_Static_assert(__builtin_offsetof(struct bpf_link_info, xdp.ifindex) == 16, "xdp");'
    )
    src = tmp_path / "layout.c"
    src.write_text('#include "vmlinux.h"\n' + "\n".join(asserts) + "\n")
    vmlinux = _vmlinux_h(tmp_path)
    res = run(
        clang, "-target", "bpf", "-fsyntax-only", "-I", str(vmlinux.parent), str(src), check=False
    )
    assert res.returncode == 0, res.stderr[-3000:]


@pytest.mark.system
@pytest.mark.kmatrix
def test_enums_have_the_kernels_values(tmp_path: Path) -> None:
    text = _vmlinux_h(tmp_path).read_text()
    kernel = dict(re.findall(r"^\s+(BPF_\w+) = (-?\d+),?$", text, re.M))
    checks = [
        (uapi.BPFCmd, "BPF_"),
        (uapi.MapType, "BPF_MAP_TYPE_"),
        (uapi.ProgType, "BPF_PROG_TYPE_"),
        (uapi.AttachType, "BPF_"),
        (uapi.LinkType, "BPF_LINK_TYPE_"),
    ]
    compared = 0
    for enum, prefix in checks:
        for member in enum:
            kname = prefix + member.name
            if member.name == "CGROUP_STORAGE" or member.name == "PERCPU_CGROUP_STORAGE":
                kname += "_DEPRECATED"  # renamed in 6.x uapi, same value
            if kname in kernel:
                assert int(kernel[kname]) == member.value, kname
                compared += 1
    assert compared > 150


def _declared_layouts() -> dict[str, layout.Struct]:
    found = {}
    for module in (attr, objinfo, netlink, tc):
        for name, value in vars(module).items():
            if isinstance(value, layout.Struct):
                found[f"{module.__name__}.{name}"] = value
    return found


def _random_value(field: layout.Field, rnd: random.Random) -> object:
    if field.kind == "int":
        bits = 8 * field.size
        lo, hi = (
            (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
            if field.code.islower()
            else (0, 2**bits - 1)
        )
        return rnd.choice([lo, hi, 0, rnd.randint(lo, hi)])
    if field.kind == "string":
        return "".join(rnd.choice("abcXYZ_.09") for _ in range(rnd.randint(0, field.size)))
    if field.kind == "struct":
        return {f.name: _random_value(f, rnd) for f in field.arg.subcons if f.name}
    return bytes(rnd.getrandbits(8) for _ in range(field.size))


def test_layouts_build_and_parse_the_bytes_construct_does() -> None:
    """Each struct-packed declaration against its construct twin: random values in, the same
    bytes out; random bytes in, the same fields out; defaults and missing fields alike."""
    rnd = random.Random(14)
    layouts = _declared_layouts()
    assert len(layouts) >= 30
    for name, lay in layouts.items():
        twin = lay.construct()
        assert lay.sizeof() == twin.sizeof(), name
        named = [f for f in lay.subcons if f.name]
        for _ in range(50):
            values = {f.name: _random_value(f, rnd) for f in named}
            assert lay.build(values) == twin.build(values), name
            raw = bytes(rnd.getrandbits(7) if rnd.random() < 0.7 else 0 for _ in range(lay.size))
            mine, theirs = lay.parse(raw), twin.parse(raw)
            for f in named:
                if f.kind == "string":  # ASCII bytes above (names are), NULs stripped
                    assert mine[f.name] == theirs[f.name] == getattr(mine, f.name), (name, f.name)
                elif f.kind == "struct":
                    inner = {k: v for k, v in theirs[f.name].items() if not k.startswith("_")}
                    assert mine[f.name] == inner, (name, f.name)
                else:
                    assert mine[f.name] == theirs[f.name] == getattr(mine, f.name), (name, f.name)
        if all(f.default is not layout._REQUIRED for f in named):
            assert lay.build({}) == twin.build({}), name
        else:
            with pytest.raises(KeyError):
                lay.build({})
            with pytest.raises(KeyError):
                twin.build({})
        for f in named:
            if f.kind == "string":
                with pytest.raises(ValueError):
                    lay.build({f.name: "x" * (f.size + 1)})
                with pytest.raises(cs.ConstructError):
                    twin.build({f.name: "x" * (f.size + 1)})


def test_syscall_numbers_per_architecture() -> None:
    assert syscall._SYS_BPF["x86_64"] == 321
    assert syscall._SYS_BPF["aarch64"] == 280
    assert syscall._SYS_BPF["riscv64"] == 280


def test_object_names_are_what_the_kernel_accepts() -> None:
    assert syscall.object_name("xdp-capture") == "xdp_capture"
    assert syscall.object_name("a.very.long.program_name") == "a.very.long.pro"
    assert len(syscall.object_name("x" * 40)) == 15


@pytest.mark.system
def test_kernel_keeps_the_sanitised_name() -> None:
    fd = mapcmd.map_create(uapi.MapType.ARRAY, 4, 4, 1, name="my-map:with/odd chars")
    try:
        assert objinfo.map_info(fd).name == "my_map_with_odd"
    finally:
        import os

        os.close(fd)


@pytest.mark.system
def test_fds_are_never_below_3_and_cloexec() -> None:
    """With stdin closed the kernel would hand out fd 0; we move it up and keep CLOEXEC."""
    code = textwrap.dedent(
        """
        import fcntl, os
        os.close(0)
        from pybpf.sys import mapcmd, uapi
        fd = mapcmd.map_create(uapi.MapType.ARRAY, 4, 4, 1, name="lowfd")
        try:
            os.fstat(0)
            zero_open = True
        except OSError:
            zero_open = False
        cloexec = bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)
        print(fd, zero_open, cloexec)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert int(out[0]) >= 3
    assert out[1:] == ["False", "True"]


@pytest.mark.system
def test_errors_name_the_step_and_the_errno() -> None:
    with pytest.raises(SyscallError) as exc:
        mapcmd.map_create(uapi.MapType.HASH, 0, 4, 1, name="oops")
    err = exc.value
    assert err.errno == 22
    assert str(err).startswith("cannot create map 'oops' (HASH): EINVAL (Invalid argument)")


@pytest.mark.system
def test_ids_walk_to_the_objects_we_created() -> None:
    import os

    mfd = mapcmd.map_create(uapi.MapType.ARRAY, 4, 4, 1, name="walk")
    pfd = progcmd.prog_load(uapi.ProgType.XDP, I.encode([I.mov64_imm(0, 2), I.exit_insn()]))
    try:
        map_id, prog_id = objinfo.map_info(mfd).id, objinfo.prog_info(pfd).id
        ids, next_id = [], objcmd.map_get_next_id(0)
        while next_id is not None:
            ids.append(next_id)
            next_id = objcmd.map_get_next_id(next_id)
        assert map_id in ids
        assert objcmd.prog_get_next_id(prog_id - 1) == prog_id
        fd2 = objcmd.prog_get_fd_by_id(prog_id)
        assert objinfo.prog_info(fd2).tag == objinfo.prog_info(pfd).tag
        os.close(fd2)
        fd3 = objcmd.map_get_fd_by_id(map_id)
        assert objinfo.map_info(fd3).name == "walk"
        os.close(fd3)
        with pytest.raises(SyscallError, match="cannot open map id 4294967295: ENOENT"):
            objcmd.map_get_fd_by_id(0xFFFFFFFF)
    finally:
        os.close(mfd)
        os.close(pfd)


def _btf_blob(int_bits: int = 32, name_off: int = 1) -> bytes:
    """A BTF blob with one type: ``int`` (BTF_KIND_INT, 4 bytes)."""
    strings = b"\0int\0"
    types = struct.pack("=III", name_off, 1 << 24, 4) + struct.pack("=I", int_bits)
    header = struct.pack("=HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings


@pytest.mark.system
@pytest.mark.kmatrix
def test_btf_load_and_its_error_quotes_the_log() -> None:
    import os

    fd = progcmd.btf_load(_btf_blob())
    try:
        info = objinfo.btf_info(fd)
        assert info.size == len(_btf_blob()) and info.id > 0 and not info.kernel_btf
        fd2 = objcmd.btf_get_fd_by_id(info.id)
        os.close(fd2)
    finally:
        os.close(fd)
    with pytest.raises(SyscallError) as exc:
        progcmd.btf_load(_btf_blob(name_off=999))
    assert "cannot load BTF: EINVAL" in str(exc.value)
    assert "name_offset" in str(exc.value)  # the kernel's own words, from its log


@pytest.mark.system
@pytest.mark.kmatrix
def test_kernel_supports_map_type() -> None:
    assert mapcmd.kernel_supports_map_type(uapi.MapType.RINGBUF)
    assert mapcmd.kernel_supports_map_type(uapi.MapType.HASH)
    assert not mapcmd.kernel_supports_map_type(999)  # type: ignore[arg-type]


@pytest.mark.system
def test_enable_stats_counts_runs() -> None:
    import os

    pfd = progcmd.prog_load(uapi.ProgType.XDP, I.encode([I.mov64_imm(0, 2), I.exit_insn()]))
    sfd = linkcmd.enable_stats()
    try:
        progcmd.prog_test_run(pfd, bytes(64), repeat=5)
        # test_run does not go through the stats path on every kernel; the field must decode.
        assert objinfo.prog_info(pfd).run_cnt >= 0
    finally:
        os.close(sfd)
        os.close(pfd)
