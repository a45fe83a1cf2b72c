"""Features that objects built from libbpf-based tools' sources rely on, each reproduced by a small
program of ours under bpf/tests/realworld_*.bpf.c: pybpf loads them as libbpf does (bpftool prog
loadall is the reference) with the same program tags."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

from pybpf import ObjectSpec, load
from pybpf.btf.types import FuncLinkage, Kind

from conftest import ROOT, bpf_object, need_tool


def libbpf_tags(path: str) -> dict[str, str]:
    """{program name: tag} as libbpf loads the object (bpftool prog loadall; bpftool shows the
    whole name from BTF, not the kernel's 15-character one)."""
    need_tool("bpftool")
    pin = f"/sys/fs/bpf/pybpf-rw-{uuid.uuid4().hex[:8]}"
    try:
        res = subprocess.run(
            ["bpftool", "prog", "loadall", path, pin], capture_output=True, text=True
        )
        assert res.returncode == 0, f"libbpf cannot load {path}: {res.stderr}"
        tags = {}
        for entry in os.listdir(pin):
            out = subprocess.check_output(
                ["bpftool", "-j", "prog", "show", "pinned", f"{pin}/{entry}"]
            )
            info = json.loads(out)
            tags[info["name"]] = info["tag"]
        return tags
    finally:
        shutil.rmtree(pin, ignore_errors=True)


def pybpf_cli_tags(path: str) -> dict[str, str]:
    """{program name: tag} as `pybpf load` prints them; the load must succeed."""
    res = subprocess.run(
        [sys.executable, "-m", "pybpf", "load", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stderr
    tags = {}
    for line in res.stdout.splitlines():
        name, rest = line.split(": ", 1)
        tags[name] = rest.split(" tag ")[1].split()[0]
    return tags


# --- hidden global subprograms (usdt.bpf.h's `__weak __hidden int bpf_usdt_arg(...)`) ---------


def test_hidden_global_subprograms_become_static_in_the_btf():
    spec = ObjectSpec.from_file(bpf_object("tests/realworld_hidden_subprog"))

    def linkage(name: str) -> FuncLinkage:
        (tid,) = spec.btf.find_all(name, Kind.FUNC)
        return spec.btf.type(tid).linkage

    assert linkage("fill") == FuncLinkage.STATIC  # weak + hidden
    assert linkage("bump") == FuncLinkage.STATIC  # global + hidden
    assert linkage("xdp_hidden_subprog") == FuncLinkage.GLOBAL  # a program keeps its linkage


@pytest.mark.system
@pytest.mark.kmatrix
def test_hidden_global_subprograms_load_like_libbpf():
    # As global functions the verifier refuses `fill` (it writes through a pointer that may be
    # NULL); libbpf loads the object because it marks hidden subprograms static.
    path = str(bpf_object("tests/realworld_hidden_subprog"))
    expected = libbpf_tags(path)
    assert set(expected) == {"xdp_hidden_subprog"}
    assert pybpf_cli_tags(path) == expected
    with load(ObjectSpec.from_file(path)) as obj:
        res = obj.programs["xdp_hidden_subprog"].test_run(bytes(64))
    assert res.retval == 2  # XDP_PASS: fill() stored ingress_ifindex + 2, bump() added 1


# --- struct_ops (sched_ext schedulers, TCP congestion controls, qdiscs) -------------------------


def pybpf_cli_error(path: str) -> str:
    """The one-line error of a `pybpf load` that must fail (no traceback)."""
    res = subprocess.run(
        [sys.executable, "-m", "pybpf", "load", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert res.returncode == 1, res.stdout
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    return lines[0]


def libbpf_refuses(path: str) -> str:
    need_tool("bpftool")
    pin = f"/sys/fs/bpf/pybpf-rw-{uuid.uuid4().hex[:8]}"
    try:
        res = subprocess.run(
            ["bpftool", "-d", "prog", "loadall", path, pin], capture_output=True, text=True
        )
    finally:
        shutil.rmtree(pin, ignore_errors=True)
    assert res.returncode != 0, f"libbpf loads {path}"
    return res.stderr


@pytest.mark.system
@pytest.mark.kmatrix
def test_struct_ops_for_a_struct_the_kernel_lacks_is_refused_naming_it():
    path = str(bpf_object("tests/realworld_struct_ops_absent"))
    assert "struct pybpf_absent_ops is not found in kernel BTF" in libbpf_refuses(path)
    err = pybpf_cli_error(path)
    assert "struct pybpf_absent_ops" in err and "'absent_ops'" in err
    assert "kernel's BTF does not have" in err


@pytest.mark.system
def test_struct_ops_programs_load_like_libbpf():
    # Each program is loaded against the kernel struct (attach_btf_id) and the member it fills
    # (expected_attach_type), as libbpf does; Debian's libbpf 1.1 knows `.struct_ops` but not
    # `.struct_ops.link`, so the plain object is the one compared (tests/test_struct_ops.py
    # registers both).
    path = str(bpf_object("tests/attach_struct_ops"))
    expected = libbpf_tags(path)
    assert set(expected) == {"plain_ssthresh", "plain_undo_cwnd", "plain_cong_avoid"}
    assert pybpf_cli_tags(path) == expected
    linked = pybpf_cli_tags(bpf_object("tests/realworld_struct_ops_cc"))
    assert set(linked) == {"rw_ssthresh", "rw_undo_cwnd", "rw_cong_avoid"}
    assert linked["rw_ssthresh"] == expected["plain_ssthresh"]  # the same code, the same tag


# --- maps pinned by name (xdp-tutorial's redirect maps, xdp-filter's filter maps) ---------------


@pytest.mark.system
@pytest.mark.kmatrix
def test_a_devmap_pinned_by_libbpf_is_reused_with_the_same_tag():
    # libbpf pins `rw_pin_devmap` at /sys/fs/bpf/rw_pin_devmap; the kernel reports that devmap's
    # flags with BPF_F_RDONLY_PROG added, which the object never set. libbpf reuses its own pin
    # regardless, and so must pybpf.
    path = str(bpf_object("tests/realworld_pinned_devmap"))
    pin = "/sys/fs/bpf/rw_pin_devmap"
    try:
        expected = libbpf_tags(path)  # creates and pins the map
        pinned = json.loads(
            subprocess.check_output(["bpftool", "-j", "map", "show", "pinned", pin])
        )
        assert pinned["flags"] == 128  # BPF_F_RDONLY_PROG, added by the kernel
        assert libbpf_tags(path) == expected  # libbpf reuses its pin
        assert pybpf_cli_tags(path) == expected  # so do we
        with load(ObjectSpec.from_file(path)) as obj:
            assert obj.maps["rw_pin_devmap"].id == pinned["id"]
    finally:
        if os.path.exists(pin):
            os.unlink(pin)
