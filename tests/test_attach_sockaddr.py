"""The cgroup sock_addr hooks beyond connect4, each attached for real by its section name
(``attach(prog, cgroup=...)``) to a test cgroup: a process in the cgroup does what a user does
(connects, binds, sends and receives datagrams, asks getpeername/getsockname) and the test
checks what that process saw — the rewritten address, the refused bind — then detaches and
checks that the same steps give the kernel's plain answer again. Programs:
bpf/tests/attach_sockaddr.bpf.c."""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

import pybpf
from pybpf import ObjectSpec
from pybpf.attach import attach
from pybpf.object.sections import match_section
from tests.conftest import bpf_object, need_tool

pytestmark = [pytest.mark.system, pytest.mark.kernel_btf]

_n = itertools.count()


def in_cgroup(cg: Path, code: str) -> str:
    """What Python ``code`` prints, run by a process that joins ``cg`` before it starts."""

    def join() -> None:
        with open(cg / "cgroup.procs", "w") as f:
            f.write(str(os.getpid()))

    res = subprocess.run(
        [sys.executable, "-c", "import errno, socket\n" + textwrap.dedent(code)],
        preexec_fn=join, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def free_port(family: int, kind: int) -> int:
    with socket.socket(family, kind) as s:
        s.bind((LOOPBACK[family], 0))
        return s.getsockname()[1]


LOOPBACK = {socket.AF_INET: "127.0.0.1", socket.AF_INET6: "::1"}


@dataclass
class Ports:
    from_port: int
    to_port: int
    deny_port: int
    fake_port: int


# Each scenario: (what the process in the cgroup sees) run once with the program attached and
# once after; (family, ports, cgroup) -> the observation.
Scenario = Callable[[int, Ports, Path], str]


def connect_to(family: int, p: Ports, cg: Path) -> str:
    """TCP connect to from_port (bound, nobody listening): which port answered."""
    host = LOOPBACK[family]
    with socket.socket(family) as server, socket.socket(family) as closed:
        server.bind((host, p.to_port))
        server.listen()
        closed.bind((host, p.from_port))
        return in_cgroup(
            cg,
            f"""
            try:
                s = socket.create_connection(({host!r}, {p.from_port}), timeout=5)
                print(s.getpeername()[1])
            except OSError as e:
                print(errno.errorcode[e.errno])
            """,
        )


def bind_denied(family: int, p: Ports, cg: Path) -> str:
    """bind() to deny_port, and to another port."""
    host = LOOPBACK[family]
    return in_cgroup(
        cg,
        f"""
        out = []
        for port in ({p.deny_port}, 0):
            s = socket.socket({int(family)}, socket.SOCK_DGRAM)
            try:
                s.bind(({host!r}, port))
                out.append("bound")
            except OSError as e:
                out.append(errno.errorcode[e.errno])
            s.close()
        print(" ".join(out))
        """,
    )


def datagram_to(family: int, p: Ports, cg: Path) -> str:
    """A datagram sent to from_port: which of two receivers (from_port, to_port) got it."""
    host = LOOPBACK[family]
    a, b = socket.socket(family, socket.SOCK_DGRAM), socket.socket(family, socket.SOCK_DGRAM)
    with a, b:
        a.bind((host, p.from_port))
        b.bind((host, p.to_port))
        in_cgroup(
            cg,
            f"s = socket.socket({int(family)}, socket.SOCK_DGRAM)\n"
            f"s.sendto(b'hi', ({host!r}, {p.from_port}))",
        )
        got = []
        for name, sock in (("from_port", a), ("to_port", b)):
            sock.settimeout(0.5)
            try:
                sock.recv(10)
                got.append(name)
            except OSError:  # timed out: not for this one
                pass
        return " ".join(got)


def datagram_source(family: int, p: Ports, cg: Path) -> str:
    """The source port recvfrom() reports for a datagram sent from from_port."""
    host = LOOPBACK[family]
    return in_cgroup(
        cg,
        f"""
        rx = socket.socket({int(family)}, socket.SOCK_DGRAM); rx.bind(({host!r}, 0))
        tx = socket.socket({int(family)}, socket.SOCK_DGRAM); tx.bind(({host!r}, {p.from_port}))
        tx.sendto(b"hi", rx.getsockname())
        print(rx.recvfrom(10)[1][1])
        """,
    )


def peer_name(family: int, p: Ports, cg: Path) -> str:
    """getpeername() of a TCP connection to to_port."""
    host = LOOPBACK[family]
    with socket.socket(family) as server:
        server.bind((host, p.to_port))
        server.listen()
        return in_cgroup(
            cg,
            f"""
            s = socket.create_connection(({host!r}, {p.to_port}), timeout=5)
            print(s.getpeername()[1])
            """,
        )


def sock_name(family: int, p: Ports, cg: Path) -> str:
    """getsockname() of a socket bound to from_port."""
    host = LOOPBACK[family]
    return in_cgroup(
        cg,
        f"""
        s = socket.socket({int(family)}, socket.SOCK_DGRAM); s.bind(({host!r}, {p.from_port}))
        print(s.getsockname()[1])
        """,
    )


def fake(p: Ports) -> str:
    return str(p.fake_port)


# program, scenario, what the process sees with the program attached, and without it
CASES: list[tuple[str, Scenario, Callable[[Ports], str], Callable[[Ports], str]]] = [
    ("connect6_redirect", connect_to, lambda p: str(p.to_port), lambda p: "ECONNREFUSED"),
    ("bind4_deny", bind_denied, lambda p: "EPERM bound", lambda p: "bound bound"),
    ("bind6_deny", bind_denied, lambda p: "EPERM bound", lambda p: "bound bound"),
    ("sendmsg4_redirect", datagram_to, lambda p: "to_port", lambda p: "from_port"),
    ("sendmsg6_redirect", datagram_to, lambda p: "to_port", lambda p: "from_port"),
    ("recvmsg4_disguise", datagram_source, fake, lambda p: str(p.from_port)),
    ("recvmsg6_disguise", datagram_source, fake, lambda p: str(p.from_port)),
    ("getpeername4_disguise", peer_name, fake, lambda p: str(p.to_port)),
    ("getpeername6_disguise", peer_name, fake, lambda p: str(p.to_port)),
    ("getsockname4_disguise", sock_name, fake, lambda p: str(p.from_port)),
    ("getsockname6_disguise", sock_name, fake, lambda p: str(p.from_port)),
]


def bpftool_cgroup(cg: Path) -> set[tuple[int, str]]:
    out = subprocess.run(
        [need_tool("bpftool"), "-j", "cgroup", "show", str(cg)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return {(e["id"], e["attach_type"]) for e in json.loads(out.strip() or "[]")}


@pytest.mark.parametrize("prog, scenario, attached, detached", CASES, ids=[c[0] for c in CASES])
def test_a_sock_addr_hook_changes_what_a_process_in_the_cgroup_sees(
    cgroup: Path, prog: str, scenario: Scenario, attached, detached
) -> None:
    spec = ObjectSpec.from_file(bpf_object("tests/attach_sockaddr"))
    section = spec.programs[prog].section
    family = socket.AF_INET6 if section.endswith("6") else socket.AF_INET
    kind = socket.SOCK_STREAM if "connect" in section or "peer" in section else socket.SOCK_DGRAM
    ports = Ports(*(free_port(family, kind) for _ in range(4)))
    spec.rodata.update_from(vars(ports))
    with pybpf.load(spec, programs=[prog]) as obj:
        link = attach(obj.programs[prog], cgroup=str(cgroup))
        try:
            attach_type = match_section(section).attach_type.lower()
            assert bpftool_cgroup(cgroup) == {(obj.programs[prog].id, attach_type)}
            assert scenario(family, ports, cgroup) == attached(ports)
            hits = int.from_bytes(obj.maps["hits"][0], sys.byteorder)
            assert hits >= 1, "the program made the change"
        finally:
            link.close()
        assert bpftool_cgroup(cgroup) == set()
        assert scenario(family, ports, cgroup) == detached(ports)
