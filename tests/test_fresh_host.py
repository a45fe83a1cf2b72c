"""A fresh host without the kernel's BTF: xdptcp needs no CO-RE and captures; a CO-RE object
fails in one line.

The kernel's BTF is made unreadable to pybpf the way a kernel built without
CONFIG_DEBUG_INFO_BTF leaves it: /sys/kernel/btf is covered by an empty tmpfs; and bpffs is not
mounted, as on a freshly booted machine. Both in a mount namespace of the test's own (``unshare
-m``), so nothing else on the machine sees a change.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time

import pytest
from test_xdptcp_live import as_sent, emitted, tcpdump_lines

from conftest import ROOT, bpf_object, need_tool
from hosts import make_veth
from traffic import varied_pcap

pytestmark = pytest.mark.system

# Runs "$@" as on a fresh host: bpffs not mounted, /sys/kernel/btf empty; says so first, so a test
# cannot pass by accident.
FRESH = (
    "while umount -l /sys/fs/bpf 2>/dev/null; do :; done; "  # the host's and the session's
    "mount -t tmpfs pybpf-no-btf /sys/kernel/btf && test ! -e /sys/kernel/btf/vmlinux "
    '&& awk \'$2 == "/sys/fs/bpf" && $3 == "bpf" {exit 1}\' /proc/mounts '
    '&& echo "no kernel BTF, no bpffs" >&2 && exec "$@"'
)


def without_kernel_btf(*cmd: str) -> list[str]:
    need_tool("unshare")
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", FRESH, "sh", *cmd]


def env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), TZ="UTC")


@pytest.fixture
def veth():
    need_tool("tcpreplay")
    need_tool("tcpdump")
    pair = make_veth("nobtf")
    try:
        yield pair
    finally:
        pair.remove()


def wait_for(proc: subprocess.Popen, what: bytes, timeout: float = 30) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while what not in seen:
        ready, _, _ = select.select([proc.stderr], [], [], max(0, deadline - time.monotonic()))
        chunk = os.read(proc.stderr.fileno(), 4096) if ready else b""
        if not chunk:
            proc.kill()
            raise AssertionError(f"no {what!r} from {proc.args}: {seen.decode()}")
        seen += chunk
    return seen


def test_xdptcp_captures_without_kernel_btf(veth, tmp_path):
    pcap = tmp_path / "varied.pcap"
    frames = varied_pcap(pcap, n=1, seed=11)
    ref = tcpdump_lines(as_sent(frames, tmp_path / "sent.pcap"), "-t", "-S")
    expected = [ref[i] for i in emitted(frames)]
    assert len(expected) > 10
    cmd = without_kernel_btf(sys.executable, "-m", "xdptcp", "-i", veth.outer, "-t", "-S")
    cmd += ["-c", str(len(expected))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env())
    try:
        err = wait_for(proc, b"capturing on")
        assert b"no kernel BTF, no bpffs" in err
        veth.in_ns("tcpreplay", "-q", "--topspeed", "-i", veth.inner, str(pcap))
        out, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, (err + rest).decode()
    assert out.decode().splitlines() == expected


def test_a_core_object_without_kernel_btf_fails_in_one_line():
    path = bpf_object("tests/core_vmlinux")
    res = subprocess.run(
        without_kernel_btf(sys.executable, "-m", "pybpf", "load", str(path)),
        capture_output=True,
        text=True,
        env=env(),
    )
    lines = res.stderr.splitlines()
    assert lines[0] == "no kernel BTF, no bpffs"
    assert res.returncode == 1 and len(lines) == 2, res.stderr
    assert lines[1].startswith("pybpf: error: core_vmlinux: ")
    assert "CO-RE relocations need the kernel's BTF" in lines[1]
    assert "/sys/kernel/btf/vmlinux" in lines[1]
    assert "Traceback" not in res.stderr


def test_the_capture_object_has_nothing_to_relocate_against_the_kernel():
    """Why xdptcp works there: no CO-RE records, no kernel symbols, no BTF attach target."""
    from pybpf import ObjectSpec

    spec = ObjectSpec.from_file(bpf_object("xdptcp"))
    assert not (spec.btf_ext and any(spec.btf_ext.core_relos.values()))
    assert not any(p.needs_btf_target for p in spec.programs.values())
