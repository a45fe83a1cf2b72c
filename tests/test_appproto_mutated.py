"""Damaged payloads on every port tcpdump decodes: xdptcp's lines against tcpdump's.

tests/test_appproto.py and tests/test_dns.py hold payloads made to reach each branch of each
decoder. Here those payloads are mutated at random (bytes changed, cut, appended, repeated) and
sent, with some payloads of random bytes, between the ports of every decoder of tcpdump's list
(NFS excepted: xdptcp does not decode it), over IPv4 and IPv6. The file is read whole and cut at
several snap lengths, and ``xdptcp -r`` must print what ``tcpdump -nn -r`` prints, record for
record (a record: a line and the tab-indented lines OpenFlow's messages add to it).

``FUZZ_SEED`` changes the run; a failure names the seed.
"""

from __future__ import annotations

import os
import random

import pytest
import test_appproto as app
import test_dns as dns
from realworld.read_corpus import records

SEED = int(os.environ.get("FUZZ_SEED", "20261204"))
CASES = 1200
SEEDS = (
    app.PAYLOADS
    + app.BEEP_PAYLOADS
    + app.RESP_PAYLOADS
    + app.TELNET_PAYLOADS
    + app.MSDP_PAYLOADS
    + app.LDP_PAYLOADS
    + app.OPENFLOW_PAYLOADS
    + app.PPTP_PAYLOADS
    + dns.PAYLOADS
)
PORTS = [pair for pair in app.OTHER_PORTS + app.PORTS if 2049 not in pair]


def mutated(rng: random.Random, payload: bytes) -> bytes:
    p = bytearray(payload)
    for _ in range(rng.randint(1, 4)):
        how = rng.random()
        if how < 0.5 and p:
            p[rng.randrange(len(p))] = rng.randrange(256)
        elif how < 0.7 and p:
            del p[rng.randrange(len(p)) :]
        elif how < 0.85:
            p += rng.randbytes(rng.randint(1, 20))
        elif p:
            at = rng.randrange(len(p))
            p[at:at] = p[: rng.randint(0, len(p))]
    return bytes(p) or b"\0"


@pytest.fixture(scope="module")
def frames() -> list[bytes]:
    rng = random.Random(SEED)
    payloads = [mutated(rng, rng.choice(SEEDS)) for _ in range(CASES)]
    payloads += [rng.randbytes(rng.randint(1, 100)) for _ in range(CASES // 10)]
    out = []
    for payload in payloads:
        pair = rng.choice(PORTS)
        out += app.frames_on(
            [pair], [payload], v6_every=rng.choice([1, 2]), seq=rng.getrandbits(31)
        )
    return out


@pytest.mark.parametrize("snaplen", [0, 60, 66, 80, 120, 200])
def test_mutated_payloads_print_as_tcpdump(tmp_path, frames, snaplen) -> None:
    path = tmp_path / "mutated.pcap"
    app.write_cut(path, snaplen, frames)
    theirs, ours = records(app.tcpdump_text(path)), records(app.xdptcp_text(path))
    assert len(theirs) == len(frames)
    differ = [(a, b) for a, b in zip(theirs, ours) if a != b]
    assert ours == theirs, f"FUZZ_SEED={SEED}: {len(differ)} differ, first {differ[:1]}"
