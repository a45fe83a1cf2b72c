"""Test hosts: a veth pair between the root namespace and a network namespace made for one test.

Addresses come only from 198.18.0.0/15 and 2001:db8::/32. Names are unique per test, and
everything is removed on exit even when the test fails.

Each pair gets a subnet N of its own (198.18.N.0/24, 2001:db8:N::/64), routed in the root
namespace. Two test sessions on one host (a test file run beside ``make test``) must never use the
same N at once: with two routes to one /24, one session's SYN reaches the other's namespace. So N
is claimed with a lock on a per-subnet file, held while the pair lives (the kernel releases it
when the process ends, however it ends: a crashed run leaves nothing claimed), and a subnet that
already has an address on an interface here (a run that does not take the lock, a pair leaked
by a killed run) is passed over.
"""

from __future__ import annotations

import fcntl
import ipaddress
import itertools
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field

_counter = itertools.count()
SUBNETS = range(1, 251)
# /run/lock is a tmpfs (emptied at boot) every process on the host sees, whatever its mount
# namespace (conftest gives each session one of its own); a guest without it has /tmp.
LOCK_DIR = "/run/lock" if os.path.isdir("/run/lock") else tempfile.gettempdir()


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True)


def subnet_networks(n: int) -> tuple[ipaddress.IPv4Network, ipaddress.IPv6Network]:
    return ipaddress.IPv4Network(f"198.18.{n}.0/24"), ipaddress.IPv6Network(f"2001:db8:{n:x}::/64")


def addresses_in_use() -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address on an interface of this namespace, as the kernel reports it (``ip -j``)."""
    links = json.loads(sh("ip", "-j", "addr", "show").stdout or "[]")
    return {
        ipaddress.ip_address(a["local"].split("%")[0])
        for link in links
        for a in link.get("addr_info", ())
        if a.get("family") in ("inet", "inet6") and "local" in a
    }


@dataclass
class SubnetClaim:
    """Subnet ``n``, held by this process until ``release`` (or its exit)."""

    n: int
    _fd: int = field(repr=False, compare=False)

    def release(self) -> None:
        # The file stays: unlinking it would let a third process lock a new file of the same
        # name while a second one still holds the old one.
        os.close(self._fd)


def claim_subnet(start: int | None = None, only: bool = False) -> SubnetClaim:
    """The first free subnet from ``start`` on (wrapping around ``SUBNETS``); with ``only``,
    ``start`` itself or an error. Free: nobody holds its lock and no interface has an address in
    it. The lock is taken before the addresses are read, so a subnet set up by a session that
    holds its lock is never mistaken for free in between."""
    first = SUBNETS[0] if start is None else start
    candidates = (
        [first]
        if only
        else [SUBNETS[(first - SUBNETS[0] + i) % len(SUBNETS)] for i in range(len(SUBNETS))]
    )
    for n in candidates:
        # Not inherited (os.open's default): a child still running must not keep the claim.
        fd = os.open(
            os.path.join(LOCK_DIR, f"pybpf-test-subnet-{n}.lock"), os.O_RDWR | os.O_CREAT, 0o666
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        v4, v6 = subnet_networks(n)
        if any(a in v4 or a in v6 for a in addresses_in_use()):
            os.close(fd)
            continue
        return SubnetClaim(n, fd)
    raise RuntimeError(
        f"no free test subnet among {candidates[0]}..{candidates[-1]} (198.18.N.0/24)"
    )


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
    claim: SubnetClaim | None = field(default=None, repr=False, compare=False)

    def in_ns(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", self.ns, *args, check=check)

    @property
    def outer_ifindex(self) -> int:
        with open(f"/sys/class/net/{self.outer}/ifindex") as f:
            return int(f.read())

    def remove(self) -> None:
        sh("ip", "link", "del", self.outer, check=False)
        sh("ip", "netns", "del", self.ns, check=False)
        if self.claim is not None:  # only once the addresses are gone
            self.claim.release()
            self.claim = None


def make_veth(tag: str = "t", subnet: int | None = None) -> VethPair:
    """Create namespace + veth pair, both ends up, with IPv4 and IPv6 addresses.

    Without ``subnet``, a free one is claimed (see the module's docstring); a given ``subnet`` is
    claimed too, and an error if it is taken."""
    n = next(_counter)
    uid = f"{os.getpid() % 10000}{n}"
    if subnet is None:
        # Where the search starts only spreads sessions apart; the claim makes it safe.
        claim = claim_subnet(SUBNETS[(os.getpid() * 7 + n) % len(SUBNETS)])
    else:
        claim = claim_subnet(subnet, only=True)
    subnet = claim.n
    pair = VethPair(
        ns=f"pyb{tag}{uid}",
        outer=f"pyb{tag}{uid}o"[:15],
        inner=f"pyb{tag}{uid}i"[:15],
        outer_ip=f"198.18.{subnet}.1",
        inner_ip=f"198.18.{subnet}.2",
        outer_ip6=f"2001:db8:{subnet:x}::1",
        inner_ip6=f"2001:db8:{subnet:x}::2",
        claim=claim,
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
