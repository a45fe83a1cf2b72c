"""struct_ops, run for real: a TCP congestion control written in BPF (bpf/tests/
realworld_struct_ops_cc.bpf.c with a link, attach_struct_ops.bpf.c without) registered, shown
by the kernel in tcp_available_congestion_control, chosen with setsockopt(TCP_CONGESTION) by a
TCP connection between two network namespaces, and gone after close or kill -9 (link)."""

from __future__ import annotations

import dataclasses
import fcntl
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import pytest
from background import signalled_child

import pybpf
from pybpf import ObjectSpec
from pybpf.link.netns import in_netns
from pybpf.structops import StructOpsRegistration
from pybpf.sys import linkcmd

from conftest import ROOT, bpf_object, need_tool
from hosts import make_veth

# kmatrix: the Debian 6.1 guest has struct_ops but not struct_ops links (6.4)
pytestmark = [pytest.mark.system, pytest.mark.kernel_btf, pytest.mark.kmatrix]

RELEASE = tuple(int(x) for x in os.uname().release.split(".")[:2])
STRUCT_OPS_LINKS = RELEASE >= (6, 4)  # BPF_F_LINK struct_ops maps
needs_links = pytest.mark.skipif(
    not STRUCT_OPS_LINKS, reason="this kernel has no struct_ops links (6.4+)"
)

AVAILABLE = "/proc/sys/net/ipv4/tcp_available_congestion_control"
_n = itertools.count()


def available() -> list[str]:
    with open(AVAILABLE) as f:
        return f.read().split()


def wait_until(cond, timeout: float = 5.0) -> bool:
    """The kernel unregisters a released struct_ops after an RCU grace period: poll."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def unique_name(tag: str) -> str:
    return f"pyb{tag}{os.getpid() % 100000}{next(_n)}"[:15]  # TCP_CA_NAME_MAX is 16


def cc_spec(obj: str, var: str, name: str) -> ObjectSpec:
    """The object with its congestion control renamed (runs in parallel must not collide)."""
    spec = ObjectSpec.from_file(bpf_object(f"tests/{obj}"))
    spec.struct_ops[var] = spec.struct_ops[var].with_member(spec.btf, "name", name.encode())
    return spec


def test_struct_ops_variables_are_read_as_data() -> None:
    spec = ObjectSpec.from_file(bpf_object("tests/realworld_struct_ops_cc"))
    so = spec.struct_ops["rw_cc"]
    assert (so.section, so.type_name, so.link) == (".struct_ops.link", "tcp_congestion_ops", True)
    assert dict(so.programs) == {
        "ssthresh": "rw_ssthresh",
        "undo_cwnd": "rw_undo_cwnd",
        "cong_avoid": "rw_cong_avoid",
    }
    assert b"pybpf_rw\0" in so.data
    plain = ObjectSpec.from_file(bpf_object("tests/attach_struct_ops")).struct_ops["plain_cc"]
    assert (plain.section, plain.link) == (".struct_ops", False)


@contextmanager
def tcp_between_namespaces(cc: str, nbytes: int) -> Iterator[socket.socket]:
    """A TCP connection from this namespace to a test namespace over veth, its sender using
    congestion control ``cc``; ``nbytes`` are sent and received before the caller looks."""
    pair = make_veth("so")
    try:
        listener = in_netns(pair.ns, socket.socket)
        with listener:
            listener.bind((pair.inner_ip, 0))
            listener.listen()
            got = []

            def receive() -> None:
                conn, _ = listener.accept()
                with conn:
                    n = 0
                    while n < nbytes:
                        chunk = conn.recv(1 << 16)
                        if not chunk:
                            break
                        n += len(chunk)
                    got.append(n)

            t = threading.Thread(target=receive)
            t.start()
            with socket.socket() as client:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
                client.connect(listener.getsockname())
                client.sendall(b"c" * nbytes)
                t.join(30)
                assert got == [nbytes]
                yield client
    finally:
        pair.remove()


def ss_congestion(sock: socket.socket) -> str:
    """The congestion control `ss -ti` reports for the connection of ``sock``."""
    need_tool("ss")
    lport = sock.getsockname()[1]
    out = subprocess.run(
        ["ss", "-tin", f"( sport = :{lport} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    m = re.search(r"^\s+(\S+) wscale", out, re.M)
    assert m, out
    return m.group(1)


@needs_links
def test_a_bpf_congestion_control_carries_a_tcp_connection() -> None:
    name = unique_name("rw")
    stats = linkcmd.enable_stats()  # run_cnt of the programs, as `bpftool prog` shows them
    try:
        with pybpf.load(cc_spec("realworld_struct_ops_cc", "rw_cc", name)) as obj:
            assert name not in available()  # created, not registered: a .struct_ops.link map
            with obj.struct_ops["rw_cc"].register() as link:
                assert name in available()
                info = json.loads(
                    subprocess.check_output(["bpftool", "-j", "link", "show", "id", str(link.id)])
                )
                assert info["type"] == "struct_ops"
                with tcp_between_namespaces(name, 4 << 20) as client:
                    cc = client.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16)
                    assert cc.rstrip(b"\0").decode() == name
                    assert ss_congestion(client) == name
                runs = {p: obj.programs[p].info().run_cnt for p in obj.programs}
                assert runs["rw_cong_avoid"] > 0, runs  # ACKs of 4 MiB went through it
            assert wait_until(lambda: name not in available())
    finally:
        os.close(stats)


def struct_ops_child(obj: str, struct_ops: str, name: str, body: str) -> str:
    """A Python program that loads bpf/tests/``obj`` with its ``struct_ops`` map's algorithm
    renamed ``name`` (unique to the test), then runs ``body``."""
    head = f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        import pybpf
        spec = pybpf.ObjectSpec.from_file({str(bpf_object("tests/" + obj))!r})
        so = spec.struct_ops[{struct_ops!r}]
        spec.struct_ops[{struct_ops!r}] = so.with_member(spec.btf, "name", {name.encode()!r})
        obj = pybpf.load(spec)
    """
    return textwrap.dedent(head) + textwrap.dedent(body)


@needs_links
def test_a_struct_ops_link_dies_with_its_process() -> None:
    name = unique_name("k")
    code = struct_ops_child(
        "realworld_struct_ops_cc",
        "rw_cc",
        name,
        """
        link = obj.struct_ops["rw_cc"].register()
        print("registered", flush=True)
        time.sleep(60)
        """,
    )
    for sig in (signal.SIGKILL, signal.SIGTERM):
        with signalled_child(code, sig) as first_line:
            assert first_line.strip() == "registered"
            assert name in available()
        assert wait_until(lambda: name not in available()), f"{name} left after {sig.name}"


def test_a_plain_struct_ops_registers_on_update_and_unregisters_on_close() -> None:
    name = unique_name("p")
    with pybpf.load(cc_spec("attach_struct_ops", "plain_cc", name)) as obj:
        with obj.struct_ops["plain_cc"].register() as reg:
            assert isinstance(reg, StructOpsRegistration)
            assert name in available()
            with tcp_between_namespaces(name, 1 << 20) as client:
                assert ss_congestion(client) == name
        assert wait_until(lambda: name not in available())


def test_a_plain_struct_ops_outlives_kill_9_until_unregistered() -> None:
    """Without a link the kernel holds the map: kill -9 leaves the algorithm registered, and
    `bpftool struct_ops unregister` (the documented cleanup) removes it. A normal exit
    unregisters (atexit)."""
    need_tool("bpftool")
    name = unique_name("x")
    code = struct_ops_child(
        "attach_struct_ops",
        "plain_cc",
        name,
        """
        reg = obj.struct_ops["plain_cc"].register()
        print(obj.maps["plain_cc"].id, flush=True)
        if sys.argv[1] == "wait":
            time.sleep(60)
        """,
    )
    res = subprocess.run([sys.executable, "-c", code, "exit"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert wait_until(lambda: name not in available())
    proc = subprocess.Popen([sys.executable, "-c", code, "wait"], stdout=subprocess.PIPE, text=True)
    try:
        map_id = int(proc.stdout.readline())
        proc.kill()
        proc.wait(10)
        time.sleep(0.2)
        assert name in available()
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        subprocess.run(["bpftool", "struct_ops", "unregister", "id", str(map_id)], check=False)
    assert wait_until(lambda: name not in available())


@contextmanager
def host_lock() -> Iterator[None]:
    """libbpf registers the object's own name (pybpf_plain): one run at a time on this host."""
    with open("/tmp/pybpf-struct-ops.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def normalised_dump(name: str, progs: dict[int, str]) -> dict:
    """`bpftool struct_ops dump` of map ``name``: the kernel's view of the value, program ids
    replaced by the programs' names."""
    out = subprocess.check_output(["bpftool", "-j", "struct_ops", "dump", "name", name])
    value = json.loads(out)[1]
    text = json.dumps(value)
    return json.loads(re.sub(r"/prog_id:(\d+)", lambda m: "/" + progs[int(m.group(1))], text))


def test_the_kernel_holds_the_value_libbpf_would_give_it() -> None:
    """bpftool (libbpf 1.1) registers the same object: the kernel's dump of both values is the
    same, member by member."""
    need_tool("bpftool")
    path = str(bpf_object("tests/attach_struct_ops"))
    with host_lock():
        if "pybpf_plain" in available():
            subprocess.run(["bpftool", "struct_ops", "unregister", "name", "plain_cc"])
        subprocess.run(["bpftool", "struct_ops", "register", path], check=True, capture_output=True)
        try:
            ids = {
                p["id"]: p["name"]
                for p in json.loads(subprocess.check_output(["bpftool", "-j", "prog", "show"]))
                if p.get("type") == "struct_ops"
            }
            libbpf = normalised_dump("plain_cc", ids)
        finally:
            subprocess.run(
                ["bpftool", "struct_ops", "unregister", "name", "plain_cc"], capture_output=True
            )
        assert wait_until(lambda: "pybpf_plain" not in available())
        with pybpf.load(ObjectSpec.from_file(path)) as obj:
            ids = {p.id: name for name, p in obj.programs.items()}
            with obj.struct_ops["plain_cc"].register():
                ours = normalised_dump("plain_cc", ids)
    assert ours == libbpf
    assert ours["bpf_struct_ops_tcp_congestion_ops"]["data"]["name"] == "pybpf_plain"


def test_with_member_refuses_what_does_not_fit() -> None:
    spec = ObjectSpec.from_file(bpf_object("tests/attach_struct_ops"))
    so = spec.struct_ops["plain_cc"]
    with pytest.raises(pybpf.BPFError, match="17 bytes do not fit 'name' \\(16 bytes\\)"):
        so.with_member(spec.btf, "name", b"x" * 17)
    with pytest.raises(pybpf.BPFError, match="has no member 'nope'"):
        so.with_member(spec.btf, "nope", b"")
    assert dataclasses.replace(so) == so


@needs_links
def test_attach_all_registers_struct_ops_maps() -> None:
    """`pybpf run` attaches with attach_all: the maps are registered (their programs with
    them), and the kernel lists the algorithm until the links close."""
    from pybpf.attach import attach_all

    name = unique_name("a")
    with pybpf.load(cc_spec("realworld_struct_ops_cc", "rw_cc", name)) as obj:
        with attach_all(obj) as attached:
            assert list(attached.links) == ["rw_cc"]
            assert attached.skipped == {}
            assert name in available()
        assert wait_until(lambda: name not in available())


@needs_links
def test_pybpf_run_registers_a_congestion_control_until_stopped() -> None:
    name = unique_name("r")
    spec = cc_spec("realworld_struct_ops_cc", "rw_cc", name)
    path = f"/tmp/pybpf-run-cc-{os.getpid()}.o"
    # `pybpf run` takes a file: write the renamed variable into a copy of the object
    data = bytearray(bpf_object("tests/realworld_struct_ops_cc").read_bytes())
    old = ObjectSpec.from_file(bpf_object("tests/realworld_struct_ops_cc")).struct_ops["rw_cc"]
    at = data.find(old.data)
    assert at > 0 and data.find(old.data, at + 1) < 0
    data[at : at + len(old.data)] = spec.struct_ops["rw_cc"].data
    with open(path, "wb") as f:
        f.write(data)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pybpf", "run", path],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        try:
            line = proc.stderr.readline()
            assert "attached struct_ops rw_cc (map id " in line, line
            assert name in available()
            proc.send_signal(signal.SIGINT)
            assert proc.wait(10) == 0
        finally:
            proc.kill()
            proc.wait()
            proc.stderr.close()
        assert wait_until(lambda: name not in available())
    finally:
        os.unlink(path)


@pytest.mark.skipif(STRUCT_OPS_LINKS, reason="this kernel has struct_ops links")
def test_a_struct_ops_link_on_a_kernel_without_them_is_one_line() -> None:
    with pytest.raises(pybpf.BPFError) as e:
        pybpf.load(ObjectSpec.from_file(bpf_object("tests/realworld_struct_ops_cc")))
    assert str(e.value) == (
        "cannot create struct_ops map 'rw_cc': EINVAL (Invalid argument): this kernel has no "
        "struct_ops links (.struct_ops.link needs BPF_F_LINK, Linux 6.4)"
    )
