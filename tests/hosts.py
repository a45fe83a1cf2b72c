"""Test hosts: a veth pair between the root namespace and a network namespace made for one test.

Addresses come only from 198.18.0.0/15 and 2001:db8::/32. Names are unique per test, and
everything is removed on exit even when the test fails.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from dataclasses import dataclass

_counter = itertools.count()


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True)


@dataclass
class VethPair:
    """``outer`` lives in the root namespace, ``inner`` in namespace ``ns``.

    Frames sent from inside ``ns`` arrive on ``outer`` (where XDP programs under test attach).
    """

    ns: str
    outer: str
    inner: str
    outer_ip: str
    inner_ip: str
    outer_ip6: str
    inner_ip6: str

    def in_ns(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", self.ns, *args, check=check)

    @property
    def outer_ifindex(self) -> int:
        with open(f"/sys/class/net/{self.outer}/ifindex") as f:
            return int(f.read())

    def remove(self) -> None:
        sh("ip", "link", "del", self.outer, check=False)
        sh("ip", "netns", "del", self.ns, check=False)


def make_veth(tag: str = "t", subnet: int | None = None) -> VethPair:
    """Create namespace + veth pair, both ends up, with IPv4 and IPv6 addresses."""
    n = next(_counter)
    uid = f"{os.getpid() % 10000}{n}"
    subnet = 1 + (os.getpid() * 7 + n) % 250 if subnet is None else subnet
    pair = VethPair(
        ns=f"pyb{tag}{uid}",
        outer=f"pyb{tag}{uid}o"[:15],
        inner=f"pyb{tag}{uid}i"[:15],
        outer_ip=f"198.18.{subnet}.1",
        inner_ip=f"198.18.{subnet}.2",
        outer_ip6=f"2001:db8:{subnet:x}::1",
        inner_ip6=f"2001:db8:{subnet:x}::2",
    )
    try:
        sh("ip", "netns", "add", pair.ns)
        sh("ip", "link", "add", pair.outer, "type", "veth", "peer", "name", pair.inner)
        sh("ip", "link", "set", pair.inner, "netns", pair.ns)
        sh("ip", "addr", "add", f"{pair.outer_ip}/24", "dev", pair.outer)
        sh("ip", "-6", "addr", "add", f"{pair.outer_ip6}/64", "dev", pair.outer, "nodad")
        sh("ip", "link", "set", pair.outer, "up")
        pair.in_ns("ip", "addr", "add", f"{pair.inner_ip}/24", "dev", pair.inner)
        pair.in_ns("ip", "-6", "addr", "add", f"{pair.inner_ip6}/64", "dev", pair.inner, "nodad")
        pair.in_ns("ip", "link", "set", pair.inner, "up")
        pair.in_ns("ip", "link", "set", "lo", "up")
    except BaseException:
        pair.remove()
        raise
    return pair
