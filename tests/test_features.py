"""Kernel feature probes, and loading on a kernel that lacks features (played through the probes'
seam ``features.assume`` here; the kernel matrix boots real older kernels)."""

from __future__ import annotations

import errno
import json
import os
import re

import pytest
from kernelsim import refuse_map_type

from pybpf import ObjectSpec, load
from pybpf.btf.model import (
    BTF,
    Enum64,
    EnumValue,
    Int,
    IntEncoding,
    Member,
    Ptr,
    Struct,
    TypeTag,
)
from pybpf.btf.sanitize import BTFSupport, sanitize
from pybpf.errors import FeatureError, SyscallError
from pybpf.sys import features, progcmd
from pybpf.sys.features import Feature, FeatureProbes

from conftest import bpf_object, need_tool, run

BTF_FEATURES = [f for f in Feature if f.name.startswith("BTF_")]


def release() -> tuple[int, int]:
    major, minor = re.match(r"(\d+)\.(\d+)", os.uname().release).groups()
    return int(major), int(minor)


def version(since: str) -> tuple[int, int]:
    major, minor = since.split(".")
    return int(major), int(minor)


# --- the probes, unprivileged: what an answer of the kernel means --------------------------------


@pytest.mark.parametrize(
    "err, verdict, has",
    [
        (errno.EINVAL, False, False),  # the kernel does not know what it was asked
        (errno.E2BIG, False, False),  # an attr longer than the kernel's, with non-zero tail
        (errno.EPERM, None, True),  # cannot tell: the real load will say why in its own words
        (errno.ENOMEM, None, True),
    ],
)
def test_a_probe_reads_the_kernels_answer(monkeypatch, err, verdict, has):
    from pybpf.sys import features as mod

    monkeypatch.setattr(mod, "bpf_raw", lambda *a, **kw: (-1, err, None))
    probes = FeatureProbes()  # a fresh cache: the process-wide one may have probed already
    assert probes.probe(Feature.BTF_ENUM64) is verdict
    assert probes.has(Feature.BTF_ENUM64) is has


def test_each_feature_is_probed_once(monkeypatch):
    from pybpf.sys import features as mod

    calls = []
    monkeypatch.setitem(mod._PROBES, Feature.BTF_FLOAT, lambda: calls.append(1) or False)
    probes = FeatureProbes()
    assert [probes.has(Feature.BTF_FLOAT) for _ in range(3)] == [False] * 3
    assert calls == [1]


def test_assume_overrides_and_restores():
    with features.assume({Feature.BTF_DECL_TAG: False, Feature.BTF_FLOAT: True}):
        assert features.probe(Feature.BTF_DECL_TAG) is False
        with features.assume({Feature.BTF_DECL_TAG: True}):
            assert features.has(Feature.BTF_DECL_TAG)
        assert not features.btf_support().decl_tag
    assert Feature.BTF_DECL_TAG not in features._kernel._assumed


def test_a_missing_feature_is_one_line_with_the_first_linux_that_has_it():
    with features.assume({Feature.RINGBUF: False}), pytest.raises(FeatureError) as e:
        features.require(Feature.RINGBUF, "map 'events'")
    msg = str(e.value)
    assert msg.startswith("map 'events': BPF ring buffers need Linux 5.8 (this kernel is ")
    assert "\n" not in msg
    assert Feature.BTF.needs() == "BTF needs Linux 4.18"


# --- the probes on this kernel -------------------------------------------------------------------


@pytest.mark.system
@pytest.mark.kmatrix
@pytest.mark.parametrize("feature", list(Feature), ids=lambda f: f.name)
def test_what_mainline_had_by_this_kernels_version_is_found(feature):
    """A feature merged in Linux X.Y is there on a kernel of X.Y or later (the guests of the
    kernel matrix run this on 6.1 and 6.12)."""
    result = FeatureProbes().probe(feature)  # probed now, not taken from a cache
    if version(feature.since) <= release():
        assert result is True, f"{feature.name} (Linux {feature.since}) on {os.uname().release}"
    else:
        assert result is not None  # the kernel answered one way or the other


@pytest.mark.system
@pytest.mark.kmatrix
def test_map_type_probes_agree_with_bpftool():
    out = run(need_tool("bpftool"), "-j", "feature", "probe", "kernel").stdout
    maps = json.loads(out)["map_types"]
    assert features.has(Feature.RINGBUF) == maps["have_ringbuf_map_type"]
    assert features.has(Feature.USER_RINGBUF) == maps["have_user_ringbuf_map_type"]


# --- a sanitised object loads --------------------------------------------------------------------

# Kernels that really exist: what each lacks of the BTF features (and global data).
LINUX_5_4 = [
    Feature.BTF_FLOAT,
    Feature.BTF_DECL_TAG,
    Feature.BTF_TYPE_TAG,
    Feature.BTF_ENUM64,
    Feature.BTF_GLOBAL_FUNC,
]
LINUX_5_15 = [Feature.BTF_DECL_TAG, Feature.BTF_TYPE_TAG, Feature.BTF_ENUM64]


def bpftool_btf(btf_id: int) -> list[dict]:
    out = run(need_tool("bpftool"), "-j", "btf", "dump", "id", str(btf_id)).stdout
    return json.loads(out)["types"]


@pytest.mark.system
@pytest.mark.kmatrix
@pytest.mark.parametrize("lacking", [LINUX_5_4, LINUX_5_15], ids=["5.4", "5.15"])
def test_a_sanitised_object_loads_with_its_btf_and_says_so(lacking):
    spec = ObjectSpec.from_file(bpf_object("tests/btf_types"))
    lines: list[str] = []
    with features.assume({f: False for f in lacking}), load(spec, log=lines.append) as obj:
        assert obj.warnings == []  # the kernel took the sanitised BTF, maps got their types
        prog = obj.programs["types_prog"]
        assert prog.test_run(bytes(64)).retval in (1, 2)
        kernel_view = bpftool_btf(prog.info().btf_id)
    said = [ln for ln in lines if "kernel lacks" in ln]
    assert "btf: kernel lacks DECL_TAG (Linux 5.16): 2 DECL_TAG types sanitised to INT" in said
    kinds = {t["kind"] for t in kernel_view}
    assert "DECL_TAG" not in kinds and ("FLOAT" in kinds) == (Feature.BTF_FLOAT not in lacking)
    funcs = [t for t in kernel_view if t["kind"] == "FUNC"]
    static = all(t["linkage"] == "static" for t in funcs)
    assert static == (Feature.BTF_GLOBAL_FUNC in lacking)


@pytest.mark.system
@pytest.mark.kmatrix
def test_kinds_clang_14_does_not_emit_are_sanitised_into_btf_the_kernel_takes():
    btf = BTF(
        [
            Int("int", 4, IntEncoding.SIGNED, 0, 32),
            TypeTag("user", 1),
            Ptr(2),
            Enum64("big", 8, False, (EnumValue("HUGE", 1 << 40),)),
            Struct("s", 16, (Member("p", 3, 0), Member("b", 4, 64))),
        ]
    )
    out = sanitize(btf, BTFSupport(type_tag=False, enum64=False))
    fd = progcmd.btf_load(out.btf.encode())
    try:
        from pybpf.sys import objinfo

        kernel_view = bpftool_btf(objinfo.btf_info(fd).id)
    finally:
        os.close(fd)
    assert [t["kind"] for t in kernel_view] == ["INT", "CONST", "PTR", "UNION", "STRUCT", "INT"]
    assert kernel_view[5]["name"] == "enum64_placeholder"


@pytest.mark.system
def test_without_global_data_a_program_using_it_fails_in_one_line():
    spec = ObjectSpec.from_file(bpf_object("tests/globals"))
    lacking = {Feature.GLOBAL_DATA: False, Feature.ARRAY_MMAP: False, Feature.BTF_DATASEC: False}
    with features.assume(lacking), pytest.raises(FeatureError) as e:
        load(spec)
    assert re.match(
        r"program '\w+' uses \.\w+: global variables \(\.data, \.rodata, \.bss maps\) need "
        r"Linux 5\.2 \(this kernel is ",
        str(e.value),
    )


@pytest.mark.system
def test_a_ring_buffer_on_a_kernel_without_is_one_line(monkeypatch):
    """The kernel's answer (EINVAL for the unknown map type) simulated, the probe forced."""
    from pybpf.sys import uapi

    refuse_map_type(monkeypatch, uapi.MapType.RINGBUF)  # as before Linux 5.8
    spec = ObjectSpec.from_file(bpf_object("xdptcp"))
    with features.assume({Feature.RINGBUF: False}), pytest.raises(FeatureError) as e:
        load(spec)
    assert str(e.value).startswith("map 'xdptcp_ring': BPF ring buffers need Linux 5.8")


@pytest.mark.system
def test_an_xdp_link_on_a_kernel_without_is_one_line(monkeypatch):
    """Before 5.9 BPF_LINK_CREATE answers EINVAL for BPF_XDP (simulated; the probe forced)."""
    from pybpf.link import bpflink
    from pybpf.sys import linkcmd

    def before_5_9(*args, **kw):
        raise SyscallError("cannot create a XDP link to target 1", errno.EINVAL)

    spec = ObjectSpec.from_file(bpf_object("tests/xdp_empty"))
    with load(spec) as obj:
        prog = next(iter(obj.programs.values()))
        monkeypatch.setattr(linkcmd, "link_create", before_5_9)
        with features.assume({Feature.XDP_LINK: False}), pytest.raises(FeatureError) as e:
            bpflink.xdp_link(prog, 1)
    assert str(e.value).startswith(
        "cannot create a XDP link to target 1: bpf_link attachments of XDP programs need Linux 5.9"
    )


@pytest.mark.system
@pytest.mark.parametrize("linux, blamed", [((4, 9), True), ((5, 4), False)], ids=["4.9", "5.4"])
def test_a_map_type_newer_than_the_kernel_is_named_with_its_linux(monkeypatch, linux, blamed):
    """EINVAL for an LRU hash (Linux 4.10) simulated: on a 4.9 kernel that is the type's age;
    on 5.4 it is something else, and the kernel's own answer stands."""
    from pybpf import compat
    from pybpf.sys import uapi

    refuse_map_type(monkeypatch, uapi.MapType.LRU_HASH)
    monkeypatch.setattr(compat, "running_linux", lambda: linux)
    spec = ObjectSpec.from_file(bpf_object("tests/maps_all"))
    with pytest.raises(SyscallError if not blamed else FeatureError) as e:
        load(spec)
    if blamed:
        want = "map 'm_lru_hash': BPF_MAP_TYPE_LRU_HASH maps need Linux 4.10 (this kernel is "
        assert str(e.value).startswith(want)
    else:
        assert str(e.value).startswith("cannot create map 'm_lru_hash' (LRU_HASH): EINVAL")


def test_the_running_kernels_version_is_read_from_uname(monkeypatch):
    from pybpf import compat

    for release, want in [("6.1.0-57-amd64", (6, 1)), ("5.4.0", (5, 4)), ("weird", (0, 0))]:
        monkeypatch.setattr(os, "uname", lambda r=release: os.uname_result(("", "", r, "", "")))
        assert compat.running_linux() == want
