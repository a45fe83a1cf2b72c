"""tests/hosts.py gives each veth pair a subnet no other session on the host uses at the same time.

Two sessions (a test file run beside ``make test``) that routed one /24 twice in the root
namespace would send each other's SYNs into the wrong namespace.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT
from hosts import SUBNETS, claim_subnet, make_veth, sh

pytestmark = pytest.mark.system

# Claims ``count`` subnets from ``start`` on, prints them, and holds them until stdin closes.
_HOLDER = """
import sys
sys.path.insert(0, {tests!r})
from hosts import claim_subnet
start, count = {start}, {count}
claims = []
for _ in range(count):
    claims.append(claim_subnet(start))
print(" ".join(str(c.n) for c in claims), flush=True)
sys.stdin.read()
"""


def _start() -> int:
    return SUBNETS[(os.getpid() * 13) % len(SUBNETS)]


def test_sessions_never_hold_the_same_subnet() -> None:
    # Both start their search at the same subnet: only the claim keeps them apart.
    code = _HOLDER.format(tests=str(ROOT / "tests"), start=_start(), count=10)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    try:
        held = [set(map(int, p.stdout.readline().split())) for p in procs]
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(timeout=10)
    assert [len(h) for h in held] == [10, 10]
    assert not held[0] & held[1]


def test_a_subnet_with_an_address_on_an_interface_is_passed_over() -> None:
    a = claim_subnet(_start())
    b = claim_subnet(a.n + 1 if a.n + 1 in SUBNETS else SUBNETS[0])
    a.release()
    b.release()
    # Another run's pair, as a session that does not take the lock would leave it.
    outer, inner = f"pybhs{os.getpid() % 100000}a", f"pybhs{os.getpid() % 100000}b"
    sh("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
    try:
        sh("ip", "addr", "add", f"198.18.{a.n}.7/24", "dev", outer)
        sh("ip", "-6", "addr", "add", f"2001:db8:{b.n:x}::7/64", "dev", inner, "nodad")
        for taken in (a.n, b.n):
            with pytest.raises(RuntimeError, match="no free test subnet"):
                claim_subnet(taken, only=True)
        other = claim_subnet(a.n)
        other.release()
        assert other.n not in (a.n, b.n)
    finally:
        sh("ip", "link", "del", outer, check=False)
    assert sh("ip", "link", "show", outer, check=False).returncode != 0


def test_make_veth_holds_its_subnet_until_removed() -> None:
    pair = make_veth("hs")
    n = int(pair.outer_ip.split(".")[2])
    try:
        with pytest.raises(RuntimeError, match="no free test subnet"):
            make_veth("hs", subnet=n)
    finally:
        pair.remove()
    again = claim_subnet(n, only=True)  # free once the pair is gone
    again.release()
    assert sh("ip", "netns", "list").stdout.find(pair.ns) == -1
